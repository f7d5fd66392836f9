"""The records of a training run: ``train.json``, the work dir's ``run.json`` and ``launch.json``."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tinlib.records.base import Fields, Number, Record, omitted


class BestScore(Fields):
    """The best validation score of a run: ``metric`` (e.g. ``top1_acc``, a fraction) at ``epoch``."""

    metric: str
    value: Number
    epoch: int


class CheckpointPaths(Fields):
    """Where a run's checkpoints are: ``latest`` (final weights) and ``best`` (None without validation)."""

    latest: str | None = None
    best: str | None = None


class SkippedSampleEntry(Fields):
    """A sample that could not be read (``data.skip_bad_samples``): left out of an evaluation, or
    replaced by the next readable one in training. ``index`` in the dataset (0-based), ``line`` of
    the annotation list (1-based), ``path`` as the list gives it, ``reason`` (the decoder's
    message); ``times``: how often a training run met it (every epoch, every process)."""

    index: int
    line: int | None = None
    path: str | None = None
    reason: str | None = None
    times: int | None = omitted()


class TrainRecord(Record):
    """``train.json``: the summary of a training run, written by rank 0 when training ends.

    ``last_val`` holds the last validation metrics as fractions (``top1_acc``, ...); ``lr_scaling``
    the learning rate after the linear scaling rule; ``git``, ``versions`` and ``device`` record
    the code and machine; ``config`` is the whole config the run used (``Config.to_dict()``).
    ``skipped_samples``: the training samples that could not be read and were replaced
    (``data.skip_bad_samples``), ``num_skipped`` how often that happened in this session.
    """

    KIND: ClassVar[str] = "training summary"
    FILENAME: ClassVar[str] = "train.json"
    WRITER: ClassVar[str] = "the training (`tinlib train`)"

    run: str | None = None
    config_name: str
    work_dir: str | None = None
    epochs: int | None = None
    iters_per_epoch: int | None = None
    world_size: int = 1
    videos_per_gpu: int | None = None
    lr_scaling: dict[str, Any] | None = None
    seed: int | None = None
    deterministic: bool | None = None
    amp: str | None = None
    sync_bn: bool | None = None
    last_val: dict[str, Number] | None = None
    best: BestScore | None = None
    resumed_from_epoch: int | None = None
    checkpoints: CheckpointPaths = Field(default_factory=CheckpointPaths)
    num_skipped: int | None = omitted()
    skipped_samples: list[SkippedSampleEntry] | None = omitted()
    elapsed_s_this_session: Number | None = None
    git: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    device: dict[str, Any] | None = None
    time: str | None = None
    config: dict[str, Any]

    @property
    def device_name(self) -> str:
        """The torch device the run trained on (``cpu``, ``cuda:0``), '' when not recorded."""
        return str((self.device or {}).get("device", ""))


class RunState(Record):
    """``run.json`` in a work dir: which config's run it holds and how far it got, checked before a
    new run may use the folder. ``status`` is one of :attr:`STATUSES`: ``running`` (also what a
    run killed by SIGKILL leaves behind), ``finished``, ``failed`` (an error stopped it; ``error``
    holds the one-line reason), ``preempted`` (SIGTERM or SIGUSR1 stopped it at an iteration
    boundary, checkpointed there) or ``interrupted`` (Ctrl-C: the same at a boundary, or at once
    with ``error`` saying so). ``inner_iter`` is set for a checkpoint written inside an epoch;
    ``iteration`` (the global iteration) and ``signal`` (``SIGTERM``, ...) for a run a signal
    stopped. ``pid``, ``host`` and ``heartbeat`` (ISO time of the write) are the writer's, as in
    the work dir's lock. Files of older versions (without the newer fields) read unchanged."""

    KIND: ClassVar[str] = "work-dir record"
    FILENAME: ClassVar[str] = "run.json"
    WRITER: ClassVar[str] = "the training (`tinlib train`)"
    STATUSES: ClassVar[tuple[str, ...]] = ("running", "finished", "failed", "interrupted", "preempted")

    config_name: str
    status: str
    epoch: int
    epochs: int | None = None
    seed: int | None = None
    world_size: int | None = None
    lr: dict[str, Any] | None = None
    best: BestScore | None = None
    time: str | None = None
    inner_iter: int | None = omitted()
    iteration: int | None = omitted()
    signal: str | None = omitted()
    error: str | None = omitted()
    pid: int | None = omitted()
    host: str | None = omitted()
    heartbeat: str | None = omitted()
    config: dict[str, Any] | None = None


class LaunchRecord(Record):
    """``launch.json``: how the train step launched a run: ``nodes`` x ``gpus_per_node`` processes
    (``world_size``) on ``device`` (``cpu`` or ``cuda``), through torchrun or in-process, and the
    wall time of the whole step in seconds."""

    KIND: ClassVar[str] = "launch record"
    FILENAME: ClassVar[str] = "launch.json"
    WRITER: ClassVar[str] = "the train step (notebook 01_train)"

    config: str | None = None
    nodes: int
    gpus_per_node: int
    world_size: int
    device: str
    torchrun: bool | None = None
    work_dir: str | None = None
    wall_s: Number | None = None
