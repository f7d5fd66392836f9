"""The records of what was measured: ``metrics.json`` (``tinlib test``), ``reversal.json`` (the
synthetic time-reversal pairs), ``latency.json`` (``tinlib latency``) and the ablation's ``summary.json``."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tinlib.records.base import Fields, Number, Record, omitted
from tinlib.records.training import SkippedSampleEntry


class CheckpointInfo(Fields):
    """The checkpoint a test scored: its path, sha256, layout (``tinlib``, ``mmaction2``...) and the
    training metadata stored in it (epoch, seed, ...); ``url`` where it was downloaded from (a
    published checkpoint)."""

    path: str | None = None
    url: str | None = omitted()
    sha256: str | None = None
    layout: str | None = None
    train_meta: dict[str, Any] = Field(default_factory=dict)


class MetricsRecord(Record):
    """``metrics.json``: what ``tinlib test`` measured on one split.

    ``metrics``: ``top1_acc``, ``top5_acc``, ``mean_class_accuracy`` as fractions (MMAction2's
    definitions); ``metrics_percent`` the same in percent, rounded to 2 decimals;
    ``per_class_accuracy`` ``[K]`` (None for a class without videos), ``class_counts`` ``[K]`` and
    ``confusion_matrix`` ``[K, K]`` (rows: true class); ``test_setting`` the views and crops;
    ``scores_file`` the raw scores beside it (``scores.npz``). ``num_samples`` videos were scored of
    the ``num_listed`` in the list; the ``num_skipped`` unreadable ones (``data.skip_bad_samples``)
    are named in ``skipped_samples``.
    """

    KIND: ClassVar[str] = "test-metrics record"
    FILENAME: ClassVar[str] = "metrics.json"
    WRITER: ClassVar[str] = "the evaluation (`tinlib test`)"

    run: str | None = None
    config_name: str
    split: str = "test"
    num_samples: int | None = None
    num_listed: int | None = omitted()
    num_skipped: int | None = omitted()
    num_classes: int | None = None
    metrics: dict[str, Number]
    metrics_percent: dict[str, Number]
    per_class_accuracy: list[Number | None] = Field(default_factory=list)
    class_counts: list[int] = Field(default_factory=list)
    confusion_matrix: list[list[int]] = Field(default_factory=list)
    test_setting: dict[str, Any] | None = None
    checkpoint: CheckpointInfo = Field(default_factory=CheckpointInfo)
    seed: int | None = None
    eval_seed: int | None = None
    skipped_samples: list[SkippedSampleEntry] = Field(default_factory=list)
    git: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    device: dict[str, Any] | None = None
    world_size: int = 1
    time: str | None = None
    elapsed_s: Number | None = None
    scores_file: str | None = None
    config: dict[str, Any]

    def percent(self, key: str) -> float | None:
        """``metrics_percent[key]`` (``top1_acc``, ...) as a float, None when not recorded."""
        value = self.metrics_percent.get(key)
        return None if value is None else float(value)


class PairResult(Fields):
    """One time-reversal pair: its two classes (indices and names), videos, and percentages."""

    classes: list[int]
    names: list[str] | None = None
    n: int
    direction_acc: Number | None = None
    pair_id_acc: Number | None = None
    top1: Number | None = None


class ReversalRecord(Record):
    """``reversal.json``: how a model tells time-reversed classes apart, in percent, on the ``n``
    videos of the pairs (``n_other`` videos of the other classes): ``direction_acc`` (own class
    above its reversed twin; ``chance`` is 50), ``pair_id_acc`` (top-1 in the right pair),
    ``top1_reversal`` / ``top1_other`` (plain top-1 on pair / other videos), and ``per_pair``.
    Values are None where there were no videos to measure."""

    KIND: ClassVar[str] = "reversal-pair record"
    FILENAME: ClassVar[str] = "reversal.json"
    WRITER: ClassVar[str] = "the evaluation step (notebook 02_evaluate)"

    chance: Number
    n: int
    direction_acc: Number | None
    pair_id_acc: Number | None = None
    top1_reversal: Number | None = None
    top1_other: Number | None = None
    n_other: int | None = None
    per_pair: list[PairResult] = Field(default_factory=list)


class DeviceLatency(Fields):
    """Timing of one architecture on one device: milliseconds per video over ``iters`` timed
    iterations after ``warmup``; ``fps_mmaction2`` repeats MMAction2's formula."""

    mean_ms: Number
    median_ms: Number | None = None
    std_ms: Number | None = None
    min_ms: Number | None = None
    fps: Number | None = None
    fps_mmaction2: Number | None = None
    warmup: int | None = None
    iters: int | None = None
    device: str | None = None
    device_name: str | None = None
    threads: int | None = None


class LatencyModel(Fields):
    """One architecture of a latency run: parameters, FLOPs (``flops_mmcv`` is the unit of the
    model zoo's column), ``latency`` per device type (``cpu``, ``cuda``), the published figures
    (``zoo``) and, measured on CUDA only, the peak training memory ``train_gpu_mem_mib`` with the
    videos per GPU, autocast and iterations it was measured at."""

    arch: str
    params: int
    flops_torch: int | None = None
    macs_torch: int | None = None
    flops_mmcv: int | None = None
    latency: dict[str, DeviceLatency] = Field(default_factory=dict)
    train_gpu_mem_mib: int | None = omitted()
    videos_per_gpu: int | None = omitted()
    amp: str | None = omitted()
    iters: int | None = omitted()
    zoo: dict[str, Any] | None = None

    def mean_ms(self, device: str = "cuda") -> float | None:
        """Mean milliseconds per video on ``device`` (``"cpu"``, ``"cuda"``); None when not timed there."""
        timing = self.latency.get(device)
        return None if timing is None else float(timing.mean_ms)


class LatencySetting(Fields):
    """The input a latency run measured: the config, ``input_shape`` ``[1, V*T, 3, S, S]`` timed
    and ``flops_input_shape`` ``[1, T, 3, S, S]`` counted, and the method in words."""

    config: str
    num_classes: int | None = None
    num_segments: int | None = None
    views: int | None = None
    input_shape: list[int] | None = None
    flops_input_shape: list[int] | None = None
    average_clips: str | None = None
    batch_size: int | None = None
    warmup: int | None = None
    method: str | None = None


class LatencyRecord(Record):
    """``latency.json``: ``tinlib latency`` for several architectures on one config's test setting."""

    KIND: ClassVar[str] = "latency record"
    FILENAME: ClassVar[str] = "latency.json"
    WRITER: ClassVar[str] = "the latency step (`tinlib latency`)"

    setting: LatencySetting
    models: dict[str, LatencyModel]
    devices: list[str] = Field(default_factory=list)
    device_info: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    git: dict[str, Any] | None = None
    time: str | None = None


class AblationSummary(Record):
    """``summary.json`` of the interlace-gradient ablation: one row per (gradient, seed) run
    (percentages, final training loss), mean and sd per gradient, and the paired comparisons."""

    KIND: ClassVar[str] = "ablation summary"
    FILENAME: ClassVar[str] = "summary.json"
    WRITER: ClassVar[str] = "the ablation (`make ablation`)"

    config: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    grads: list[str]
    seeds: list[int]
    runs: list[dict[str, Any]]
    per_grad: dict[str, Any] = Field(default_factory=dict)
    comparisons: dict[str, Any] = Field(default_factory=dict)
    # sha256 of the runs' resolved config (absent in summaries written before it was recorded)
    config_digest: str | None = omitted()
