"""The files runs write, as typed records: one class per file, with its schema version.

A run is a chain of steps coupled only through these files, so they are defined once, here:

- :class:`TrainRecord`: ``<results>/<run>/train.json``, the summary ``tinlib train`` writes at the end;
- :class:`LogHeader` / :class:`LogEntry`: ``<work_dir>/log.json`` (copied to ``<results>/<run>/``),
  JSON lines from ``tinlib train``: a header per session, then ``train`` and ``val`` entries;
- :class:`RunState`: ``<work_dir>/run.json``, what a work dir holds (``tinlib train``);
- :class:`MetricsRecord`: ``<results>/<run>/metrics.json`` (``tinlib test``);
- :class:`LatencyRecord`: ``latency.json`` (``tinlib latency``);
- :class:`ReversalRecord`: ``<results>/<run>/reversal.json``, the evaluation on the synthetic data;
- :class:`LaunchRecord`: ``<results>/<run>/launch.json``, how the train step launched the run;
- :class:`PrepareRecord`: ``<lists_dir>/tinlib_prepare.json``, the prepare step's summary;
- :class:`SyntheticMeta`: ``<root>/synthetic_meta.json``, the synthetic dataset's description;
- :class:`ExtractionMarker`: ``<frame folder>/.extracted.json``, one video's frame extraction;
- :class:`AblationSummary`: ``<results>/<ablation>/summary.json``, the interlace-gradient ablation.

Every record is a dataclass. ``Record.read(path)`` returns an instance and ``record.write(path)``
writes it atomically (a temporary file renamed over the target). Keys a class does not know are
kept in ``extra`` and written back, so a file written by a newer version still loads and survives
a rewrite. Each JSON file carries ``"schema": N`` (the version of its layout); the files written
before records had a version carry none and read as version 1, which is the layout they have.
A file that cannot be read, is not JSON, or lacks a key its record needs raises
:class:`RecordError` (a :class:`~tinlib.errors.UserError`) that names the file and what to do.

Nothing here imports torch, so reading records stays fast (``tinlib zoo`` takes well under a second).
"""
from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, Union

from tinlib.errors import UserError
from tinlib.io import atomic_write_json

if TYPE_CHECKING:
    from typing_extensions import Self

PathLike = str | os.PathLike
# field metadata: leave the key out of the written file while the value is None (see Fields.to_dict)
OMIT_NONE = {"omit_none": True}


class RecordError(UserError):
    """A run record that cannot be used: missing, unreadable, not JSON, or not the record expected.
    The message names the file and what to do."""


# --------------------------------------------------------------------------------------------
# Decoding and encoding: dataclass fields <-> JSON values
# --------------------------------------------------------------------------------------------
_SCALARS: dict[type, str] = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


class _Mismatch(ValueError):
    """A value of the wrong shape; ``where`` is the dotted key path inside the file."""

    def __init__(self, where: str, message: str):
        super().__init__(message)
        self.where, self.message = where, message


def _decode(tp: Any, value: Any, where: str) -> Any:
    """``value`` (from JSON) checked against the annotation ``tp``; nested records become instances.
    Numbers are kept as they are (an int stays an int where a float is expected), so a file
    round-trips unchanged."""
    if tp is Any or tp is object:
        return value
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _decode(arg, value, where)
            except _Mismatch as err:
                errors.append(err)
        raise errors[0]
    if isinstance(tp, type) and issubclass(tp, Fields):
        return tp._from_mapping(value, where)
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise _Mismatch(where, f"expected a list, found {_type_name(value)}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _Mismatch(where, f"expected an object, found {_type_name(value)}")
        _, item = typing.get_args(tp) or (str, Any)
        return {k: _decode(item, v, f"{where}.{k}") for k, v in value.items()}
    if tp in _SCALARS:
        ok = (isinstance(value, bool) if tp is bool else
              isinstance(value, str) if tp is str else
              isinstance(value, int) and not isinstance(value, bool) if tp is int else
              isinstance(value, (int, float)) and not isinstance(value, bool))
        if not ok:
            raise _Mismatch(where, f"expected {_SCALARS[tp]}, found {_type_name(value)}")
        return value
    raise TypeError(f"records: unsupported annotation {tp!r} at {where}")  # a bug in this module


def _encode(value: Any) -> Any:
    if isinstance(value, Fields):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------
# Base classes
# --------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class Fields:
    """A typed JSON object: the dataclass fields are its known keys (fields without a default are
    required); ``extra`` keeps the keys this version does not know, in their order."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False, metadata={"internal": True})

    KIND: ClassVar[str] = "record"          # what the object is, for error messages

    @classmethod
    def _hints(cls) -> dict[str, Any]:
        cached = cls.__dict__.get("_hints_cache")
        if cached is None:
            cached = typing.get_type_hints(cls)
            cls._hints_cache = cached  # type: ignore[attr-defined]
        return cached

    @classmethod
    def _known_fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]

    @classmethod
    def _from_mapping(cls, data: Any, where: str = "") -> Self:
        if not isinstance(data, dict):
            raise _Mismatch(where, f"expected an object ({cls.KIND}), found {_type_name(data)}")
        hints, values, missing = cls._hints(), {}, []
        known = cls._known_fields()
        for f in known:
            key = f"{where}.{f.name}" if where else f.name
            if f.name in data:
                values[f.name] = _decode(hints[f.name], data[f.name], key)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                missing.append(key)
        if missing:
            raise _Mismatch(where, f"missing {', '.join(repr(m) for m in missing)}")
        names = {f.name for f in known}
        return cls(**values, extra={k: v for k, v in data.items() if k not in names})

    @classmethod
    def from_dict(cls, data: Any, source: PathLike | None = None) -> Self:
        """An instance from a parsed JSON object.

        Args:
            data: the object (keys this class does not know are kept in ``extra``).
            source: the file it came from, or a description, for the error message.

        Returns:
            The record.

        Raises:
            RecordError: naming ``source``, when ``data`` is not this record (a missing key, or a
                value of the wrong type, named by its key path).
        """
        try:
            return cls._from_mapping(data)
        except _Mismatch as err:
            raise _record_error(cls, source, f"{err.where}: {err.message}" if err.where else err.message) from None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: known keys in field order (optional ones left out while None), then
        the unknown keys kept from the file read."""
        out: dict[str, Any] = {}
        for f in self._known_fields():
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            out[f.name] = _encode(value)
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out


@dataclass(kw_only=True)
class Record(Fields):
    """A record stored as one JSON file. ``schema`` is the version of the file's layout: the
    class's ``SCHEMA`` for a new record, what the file says for a read one (1 when it says nothing:
    the files written before versions were recorded)."""

    schema: int = 0

    SCHEMA: ClassVar[int] = 1
    FILENAME: ClassVar[str] = ""            # the usual file name
    WRITER: ClassVar[str] = ""              # the step that writes it, for error messages

    def __post_init__(self) -> None:
        if not self.schema:
            self.schema = type(self).SCHEMA

    @classmethod
    def _from_mapping(cls, data: Any, where: str = "") -> Self:
        if isinstance(data, dict) and "schema" not in data:
            data = {"schema": 1, **data}
        return super()._from_mapping(data, where)

    @classmethod
    def read(cls, path: PathLike) -> Self:
        """The record stored in a JSON file.

        Args:
            path: the file.

        Returns:
            The record (``schema`` 1 when the file carries none).

        Raises:
            RecordError: naming the file, when it is missing, unreadable, not JSON (a truncated write,
                say) or not this record.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise _record_error(cls, path, "no such file") from None
        except (OSError, UnicodeDecodeError) as err:
            raise _record_error(cls, path, f"cannot be read ({getattr(err, 'strerror', None) or err})") from None
        try:
            data = json.loads(text)
        except ValueError as err:
            where = f" at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
            raise _record_error(cls, path, f"not valid JSON{where} (truncated or damaged)") from None
        return cls.from_dict(data, path)

    @classmethod
    def read_optional(cls, path: PathLike) -> Self | None:
        """:meth:`read`, or None when there is no file.

        Args:
            path: the file.

        Returns:
            The record, or None when ``path`` is not a file.

        Raises:
            RecordError: any other problem with the file (see :meth:`read`).
        """
        return cls.read(path) if Path(path).is_file() else None

    def write(self, path: PathLike) -> Path:
        """Write the record atomically (a crash never leaves half a file).

        Args:
            path: the file to write (replaced when it exists).

        Returns:
            ``path`` as a :class:`~pathlib.Path`.
        """
        return atomic_write_json(path, self.to_dict())


def _record_error(cls: type, source: PathLike | None, problem: str) -> RecordError:
    kind = getattr(cls, "KIND", "record")
    writer = getattr(cls, "WRITER", "")
    where = str(source) if source is not None else f"the {kind}"
    fix = f". Rerun {writer} to rewrite it, or delete it" if writer and source is not None else ""
    return RecordError(f"{where}: not a usable {kind}: {problem}{fix}")


# --------------------------------------------------------------------------------------------
# Training: train.json, run.json
# --------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class BestScore(Fields):
    """The best validation score of a run: ``metric`` (e.g. ``top1_acc``, a fraction) at ``epoch``."""

    KIND: ClassVar[str] = "best validation score"
    metric: str
    value: float
    epoch: int


@dataclass(kw_only=True)
class CheckpointPaths(Fields):
    """Where a run's checkpoints are: ``latest`` (final weights) and ``best`` (None without validation)."""

    KIND: ClassVar[str] = "checkpoint paths"
    latest: str | None = None
    best: str | None = None


@dataclass(kw_only=True)
class SkippedSampleEntry(Fields):
    """A sample that could not be read (``data.skip_bad_samples``): left out of an evaluation, or
    replaced by the next readable one in training. ``index`` in the dataset (0-based), ``line`` of
    the annotation list (1-based), ``path`` as the list gives it, ``reason`` (the decoder's
    message); ``times``: how often a training run met it (every epoch, every process)."""

    KIND: ClassVar[str] = "skipped sample"
    index: int
    line: int | None = None
    path: str | None = None
    reason: str | None = None
    times: int | None = field(default=None, metadata=OMIT_NONE)


@dataclass(kw_only=True)
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
    last_val: dict[str, float] | None = None
    best: BestScore | None = None
    resumed_from_epoch: int | None = None
    checkpoints: CheckpointPaths = field(default_factory=CheckpointPaths)
    num_skipped: int | None = field(default=None, metadata=OMIT_NONE)
    skipped_samples: list[SkippedSampleEntry] | None = field(default=None, metadata=OMIT_NONE)
    elapsed_s_this_session: float | None = None
    git: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    device: dict[str, Any] | None = None
    time: str | None = None
    config: dict[str, Any]

    @property
    def device_name(self) -> str:
        """The torch device the run trained on (``cpu``, ``cuda:0``), '' when not recorded."""
        return str((self.device or {}).get("device", ""))


@dataclass(kw_only=True)
class RunState(Record):
    """``run.json`` in a work dir: which config's run it holds and how far it got, checked before a
    new run may use the folder. ``status`` is one of :attr:`STATUSES`: ``running`` (also what a
    run killed by a signal leaves behind), ``finished``, ``failed`` (an error stopped it; ``error``
    holds the one-line reason) or ``interrupted`` (Ctrl-C; ``error`` says so). ``inner_iter`` is
    set for a checkpoint written inside an epoch. Files of older versions (without
    ``interrupted``) read unchanged: the field set is the same."""

    KIND: ClassVar[str] = "work-dir record"
    FILENAME: ClassVar[str] = "run.json"
    WRITER: ClassVar[str] = "the training (`tinlib train`)"
    STATUSES: ClassVar[tuple[str, ...]] = ("running", "finished", "failed", "interrupted")

    config_name: str
    status: str
    epoch: int
    epochs: int | None = None
    seed: int | None = None
    world_size: int | None = None
    lr: dict[str, Any] | None = None
    best: BestScore | None = None
    time: str | None = None
    inner_iter: int | None = field(default=None, metadata=OMIT_NONE)
    error: str | None = field(default=None, metadata=OMIT_NONE)
    config: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------------
# The training log: log.json (JSON lines)
# --------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class LogHeader(Fields):
    """The first line of every training session in ``log.json``: seed, processes, learning-rate
    scaling, iterations per epoch, the epoch it resumed from, and the environment (``env_info``:
    package versions and device). ``schema`` is the version of the log's layout."""

    KIND: ClassVar[str] = "log header"
    WRITER: ClassVar[str] = "the training (`tinlib train`)"
    schema: int = 1
    env_info: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)
    seed: int | None = field(default=None, metadata=OMIT_NONE)
    config_name: str | None = field(default=None, metadata=OMIT_NONE)
    work_dir: str | None = field(default=None, metadata=OMIT_NONE)
    world_size: int | None = field(default=None, metadata=OMIT_NONE)
    lr_scaling: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)
    iters_per_epoch: int | None = field(default=None, metadata=OMIT_NONE)
    resumed_from_epoch: int | None = field(default=None, metadata=OMIT_NONE)
    deterministic: bool | None = field(default=None, metadata=OMIT_NONE)
    amp: str | None = field(default=None, metadata=OMIT_NONE)
    sync_bn: bool | None = field(default=None, metadata=OMIT_NONE)
    git: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)
    time: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(kw_only=True)
class LogEntry(Fields):
    """One ``train`` or ``val`` line of ``log.json`` (MMAction2's field names).

    ``train``: averages over the last ``train.log_interval`` iterations and all processes;
    ``iter`` is 1-based within ``epoch`` (1-based); accuracies are fractions on the training
    batches; ``time`` / ``data_time`` seconds per iteration; ``memory`` the peak CUDA MiB (0 on
    the CPU); ``grad_norm`` only when gradients are clipped. ``val``: the validation metrics after
    an epoch, ``iter`` the number of videos.
    """

    KIND: ClassVar[str] = "log entry"
    WRITER: ClassVar[str] = "the training (`tinlib train`)"
    mode: str
    epoch: int
    iter: int
    lr: float | None = field(default=None, metadata=OMIT_NONE)
    loss_cls: float | None = field(default=None, metadata=OMIT_NONE)
    top1_acc: float | None = field(default=None, metadata=OMIT_NONE)
    top5_acc: float | None = field(default=None, metadata=OMIT_NONE)
    mean_class_accuracy: float | None = field(default=None, metadata=OMIT_NONE)
    grad_norm: float | None = field(default=None, metadata=OMIT_NONE)
    time: float | None = field(default=None, metadata=OMIT_NONE)
    data_time: float | None = field(default=None, metadata=OMIT_NONE)
    loss: float | None = field(default=None, metadata=OMIT_NONE)
    memory: int | None = field(default=None, metadata=OMIT_NONE)


LogLine = LogHeader | LogEntry


def parse_log_line(data: Any, source: PathLike | None = None) -> LogLine:
    """One parsed ``log.json`` line as its record.

    Args:
        data: the line's JSON object.
        source: ``file:line``, for the error message.

    Returns:
        A :class:`LogEntry` when it has ``mode``, else a :class:`LogHeader`.

    Raises:
        RecordError: the object is not a log line.
    """
    if isinstance(data, dict) and "mode" in data:
        return LogEntry.from_dict(data, source)
    return LogHeader.from_dict(data, source)


@dataclass
class TrainingLog:
    """A whole ``log.json``: every line in file order (``lines``), with the headers and entries
    apart. ``skipped`` counts a last line cut off by a killed process (ignored)."""

    path: Path
    lines: list[LogLine]
    skipped: int = 0

    @property
    def headers(self) -> list[LogHeader]:
        """The session headers, in file order (one per start or resume)."""
        return [x for x in self.lines if isinstance(x, LogHeader)]

    @property
    def entries(self) -> list[LogEntry]:
        """The ``train`` and ``val`` entries, in file order."""
        return [x for x in self.lines if isinstance(x, LogEntry)]

    def mode(self, mode: str) -> list[LogEntry]:
        """The entries of one mode, in file order.

        Args:
            mode: ``"train"`` or ``"val"``.

        Returns:
            The :class:`LogEntry` lines with that ``mode``.
        """
        return [e for e in self.entries if e.mode == mode]

    @property
    def iters_per_epoch(self) -> int | None:
        """Iterations per epoch from the last session header that records it."""
        for header in reversed(self.headers):
            if header.iters_per_epoch:
                return header.iters_per_epoch
        return None

    def peak_memory(self) -> int:
        """The largest ``memory`` (MiB) of the training entries; 0 when none was recorded (CPU)."""
        return max((int(e.memory or 0) for e in self.mode("train")), default=0)


def iter_log(path: PathLike) -> Iterator[tuple[int, LogLine | None]]:
    """The lines of a ``log.json``, parsed one at a time.

    Args:
        path: the training log.

    Yields:
        ``(line number, parsed line)`` for every non-empty line; the parsed line is None for a last
        line that is not JSON (a write cut off by a kill).

    Raises:
        RecordError: naming the file (and line), when it is missing or unreadable, or a line other
            than the last is not a log line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _record_error(LogEntry, path, "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise RecordError(f"{path}: cannot read the training log ({getattr(err, 'strerror', None) or err})") from None
    numbered = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    for pos, (number, line) in enumerate(numbered):
        try:
            data = json.loads(line)
        except ValueError:
            if pos == len(numbered) - 1:
                yield number, None
                continue
            raise RecordError(f"{path}:{number}: not a training log line (not JSON); the log is damaged: "
                              "delete the line or the file") from None
        yield number, parse_log_line(data, f"{path}:{number}")


def read_log(path: PathLike) -> TrainingLog:
    """Every line of a training log.

    Args:
        path: the training log (``log.json``).

    Returns:
        The :class:`TrainingLog`; a last line that is not JSON (cut off by a kill) is skipped and
        counted in ``skipped``.

    Raises:
        RecordError: naming the file and line, when any other line is not a log line.
    """
    lines: list[LogLine] = []
    skipped = 0
    for _, line in iter_log(path):
        if line is None:
            skipped += 1
        else:
            lines.append(line)
    return TrainingLog(Path(path), lines, skipped)


class LogWriter:
    """Append-only writer of ``log.json``, one JSON line per :class:`LogHeader` / :class:`LogEntry`,
    flushed at once so a killed run loses at most the line being written. ``path=None`` writes
    nothing (the processes other than rank 0)."""

    def __init__(self, path: PathLike | None):
        self.path = Path(path) if path is not None else None
        self.handle: IO[str] | None = None
        if self.path is not None:  # kept open for the whole run (a line per logged interval) until close()
            self.handle = open(self.path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115

    def write(self, line: LogLine | Mapping[str, Any]) -> None:
        """Append one line to the log and flush it (nothing is written when the writer has no path).

        Args:
            line: a :class:`LogHeader` / :class:`LogEntry`, or a dict, checked as a log line first.

        Raises:
            RecordError: a dict that is not a log line.
        """
        if not isinstance(line, (LogHeader, LogEntry)):
            line = parse_log_line(dict(line))
        if self.handle is not None:
            self.handle.write(json.dumps(line.to_dict()) + "\n")
            self.handle.flush()

    def close(self) -> None:
        """Close the file (further writes are dropped); safe to call twice."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None


# --------------------------------------------------------------------------------------------
# Evaluation: metrics.json, reversal.json
# --------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class CheckpointInfo(Fields):
    """The checkpoint a test scored: its path, sha256, layout (``tinlib``, ``mmaction2``...) and the
    training metadata stored in it (epoch, seed, ...); ``url`` where it was downloaded from (a
    published checkpoint)."""

    KIND: ClassVar[str] = "checkpoint description"
    path: str | None = None
    url: str | None = field(default=None, metadata=OMIT_NONE)
    sha256: str | None = None
    layout: str | None = None
    train_meta: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
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
    num_listed: int | None = field(default=None, metadata=OMIT_NONE)
    num_skipped: int | None = field(default=None, metadata=OMIT_NONE)
    num_classes: int | None = None
    metrics: dict[str, float]
    metrics_percent: dict[str, float]
    per_class_accuracy: list[float | None] = field(default_factory=list)
    class_counts: list[int] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    test_setting: dict[str, Any] | None = None
    checkpoint: CheckpointInfo = field(default_factory=CheckpointInfo)
    seed: int | None = None
    eval_seed: int | None = None
    skipped_samples: list[SkippedSampleEntry] = field(default_factory=list)
    git: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    device: dict[str, Any] | None = None
    world_size: int = 1
    time: str | None = None
    elapsed_s: float | None = None
    scores_file: str | None = None
    config: dict[str, Any]

    def percent(self, key: str) -> float | None:
        """One metric in percent.

        Args:
            key: ``"top1_acc"``, ``"top5_acc"`` or ``"mean_class_accuracy"``.

        Returns:
            ``metrics_percent[key]`` as a float, or None when it is not recorded.
        """
        value = self.metrics_percent.get(key)
        return None if value is None else float(value)


@dataclass(kw_only=True)
class PairResult(Fields):
    """One time-reversal pair: its two classes (indices and names), videos, and percentages."""

    KIND: ClassVar[str] = "reversal pair result"
    classes: list[int]
    names: list[str] | None = None
    n: int
    direction_acc: float | None = None
    pair_id_acc: float | None = None
    top1: float | None = None


@dataclass(kw_only=True)
class ReversalRecord(Record):
    """``reversal.json``: how a model tells time-reversed classes apart, in percent, on the ``n``
    videos of the pairs (``n_other`` videos of the other classes): ``direction_acc`` (own class
    above its reversed twin; ``chance`` is 50), ``pair_id_acc`` (top-1 in the right pair),
    ``top1_reversal`` / ``top1_other`` (plain top-1 on pair / other videos), and ``per_pair``.
    Values are None where there were no videos to measure."""

    KIND: ClassVar[str] = "reversal-pair record"
    FILENAME: ClassVar[str] = "reversal.json"
    WRITER: ClassVar[str] = "the evaluation step (notebook 02_evaluate)"

    chance: float
    n: int
    direction_acc: float | None
    pair_id_acc: float | None = None
    top1_reversal: float | None = None
    top1_other: float | None = None
    n_other: int | None = None
    per_pair: list[PairResult] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Latency: latency.json
# --------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class DeviceLatency(Fields):
    """Timing of one architecture on one device: milliseconds per video over ``iters`` timed
    iterations after ``warmup``; ``fps_mmaction2`` repeats MMAction2's formula."""

    KIND: ClassVar[str] = "latency on a device"
    mean_ms: float
    median_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    fps: float | None = None
    fps_mmaction2: float | None = None
    warmup: int | None = None
    iters: int | None = None
    device: str | None = None
    device_name: str | None = None
    threads: int | None = None


@dataclass(kw_only=True)
class LatencyModel(Fields):
    """One architecture of a latency run: parameters, FLOPs (``flops_mmcv`` is the unit of the
    model zoo's column), ``latency`` per device type (``cpu``, ``cuda``), the published figures
    (``zoo``) and, measured on CUDA only, the peak training memory ``train_gpu_mem_mib`` with the
    videos per GPU, autocast and iterations it was measured at."""

    KIND: ClassVar[str] = "latency entry"
    arch: str
    params: int
    flops_torch: int | None = None
    macs_torch: int | None = None
    flops_mmcv: int | None = None
    latency: dict[str, DeviceLatency] = field(default_factory=dict)
    train_gpu_mem_mib: int | None = field(default=None, metadata=OMIT_NONE)
    videos_per_gpu: int | None = field(default=None, metadata=OMIT_NONE)
    amp: str | None = field(default=None, metadata=OMIT_NONE)
    iters: int | None = field(default=None, metadata=OMIT_NONE)
    zoo: dict[str, Any] | None = None

    def mean_ms(self, device: str = "cuda") -> float | None:
        """Mean milliseconds per video on one device.

        Args:
            device: ``"cpu"`` or ``"cuda"``.

        Returns:
            The mean, or None when the model was not timed there.
        """
        timing = self.latency.get(device)
        return None if timing is None else float(timing.mean_ms)


@dataclass(kw_only=True)
class LatencySetting(Fields):
    """The input a latency run measured: the config, ``input_shape`` ``[1, V*T, 3, S, S]`` timed
    and ``flops_input_shape`` ``[1, T, 3, S, S]`` counted, and the method in words."""

    KIND: ClassVar[str] = "latency setting"
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


@dataclass(kw_only=True)
class LatencyRecord(Record):
    """``latency.json``: ``tinlib latency`` for several architectures on one config's test setting."""

    KIND: ClassVar[str] = "latency record"
    FILENAME: ClassVar[str] = "latency.json"
    WRITER: ClassVar[str] = "the latency step (`tinlib latency`)"

    setting: LatencySetting
    models: dict[str, LatencyModel]
    devices: list[str] = field(default_factory=list)
    device_info: dict[str, Any] | None = None
    versions: dict[str, Any] | None = None
    git: dict[str, Any] | None = None
    time: str | None = None


# --------------------------------------------------------------------------------------------
# Launch, data preparation, ablation
# --------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
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
    wall_s: float | None = None


@dataclass(kw_only=True)
class ListSet(Fields):
    """The annotation lists of one format (``rawframes`` or ``videos``) and how to read them
    (``test``/``test_data_prefix``: only where the data has a held-out test split, the synthetic data)."""

    KIND: ClassVar[str] = "list set"
    train: str | None = None
    val: str | None = None
    test: str | None = field(default=None, metadata=OMIT_NONE)
    data_prefix: str | None = None
    val_data_prefix: str | None = None
    test_data_prefix: str | None = field(default=None, metadata=OMIT_NONE)
    filename_tmpl: str | None = None
    start_index: int | None = None


@dataclass(kw_only=True)
class PrepareRecord(Record):
    """``tinlib_prepare.json``: what the prepare step built for a dataset: ``lists`` per format,
    the class names, videos per split (``counts``), those left out and those whose frame extraction
    failed, the data root and the seconds it took. For the synthetic dataset it also carries the
    :class:`SyntheticMeta` keys (``kind``, the primary list format; ``reversal_pairs``, ...)."""

    KIND: ClassVar[str] = "prepare summary"
    FILENAME: ClassVar[str] = "tinlib_prepare.json"
    WRITER: ClassVar[str] = "the prepare step (notebook 00_prepare_data)"

    dataset: str
    class_names: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    left_out: list[Any] = field(default_factory=list)
    failed: dict[str, str] | None = field(default=None, metadata=OMIT_NONE)
    lists: dict[str, ListSet]
    kind: str | None = field(default=None, metadata=OMIT_NONE)
    reversal_pairs: list[list[int]] | None = field(default=None, metadata=OMIT_NONE)
    data_root: str | None = None
    num_classes: int | None = None
    prepared_s: float | None = None


@dataclass(kw_only=True)
class SyntheticMeta(Record):
    """``synthetic_meta.json``: the synthetic dataset written under ``root``: the parameters it was
    written with (``params``, compared to reuse it), the lists of its primary ``kind`` (the
    held-out ``test_list`` and ``num_test`` since the test split was added; absent in older
    files), videos per split (``counts``), class names, the time-reversal pairs (class index
    pairs, the second played backwards) and the seconds taken."""

    KIND: ClassVar[str] = "synthetic dataset description"
    FILENAME: ClassVar[str] = "synthetic_meta.json"
    WRITER: ClassVar[str] = "the synthetic dataset writer (notebook 00_prepare_data)"

    layout: str
    root: str
    params: dict[str, Any]
    seed: int | None = None
    num_train: int | None = None
    num_val: int | None = None
    num_test: int | None = field(default=None, metadata=OMIT_NONE)
    counts: dict[str, int] | None = field(default=None, metadata=OMIT_NONE)
    flip_ok: bool | None = None
    kind: str
    train_list: str
    val_list: str
    test_list: str | None = field(default=None, metadata=OMIT_NONE)
    data_prefix: str | None = None
    filename_tmpl: str | None = None
    start_index: int | None = None
    lists: dict[str, ListSet] = field(default_factory=dict)
    class_names: list[str]
    num_classes: int | None = None
    reversal_pairs: list[list[int]] = field(default_factory=list)
    reversal_classes: list[int] = field(default_factory=list)
    seconds: float | None = None


@dataclass(kw_only=True)
class ExtractionMarker(Record):
    """``.extracted.json`` in a frame folder: the frames extracted from one video and the settings
    used; a folder whose marker matches the current settings is not extracted again."""

    KIND: ClassVar[str] = "frame-extraction marker"
    FILENAME: ClassVar[str] = ".extracted.json"
    WRITER: ClassVar[str] = "the prepare step (`tinlib prepare`)"

    frames: int
    settings: dict[str, Any]


@dataclass(kw_only=True)
class AblationSummary(Record):
    """``summary.json`` of the interlace-gradient ablation: one row per (gradient, seed) run
    (percentages, final training loss), mean and sd per gradient, and the paired comparisons."""

    KIND: ClassVar[str] = "ablation summary"
    FILENAME: ClassVar[str] = "summary.json"
    WRITER: ClassVar[str] = "the ablation (`make ablation`)"

    config: str
    overrides: dict[str, Any] = field(default_factory=dict)
    grads: list[str]
    seeds: list[int]
    runs: list[dict[str, Any]]
    per_grad: dict[str, Any] = field(default_factory=dict)
    comparisons: dict[str, Any] = field(default_factory=dict)
    # sha256 of the runs' resolved config (absent in summaries written before it was recorded)
    config_digest: str | None = field(default=None, metadata=OMIT_NONE)


RECORD_TYPES: tuple[type[Record], ...] = (TrainRecord, RunState, MetricsRecord, ReversalRecord, LatencyRecord,
                                          LaunchRecord, PrepareRecord, SyntheticMeta, ExtractionMarker,
                                          AblationSummary)

__all__ = [
    "OMIT_NONE",
    "RECORD_TYPES",
    "AblationSummary",
    "BestScore",
    "CheckpointInfo",
    "CheckpointPaths",
    "DeviceLatency",
    "ExtractionMarker",
    "Fields",
    "LatencyModel",
    "LatencyRecord",
    "LatencySetting",
    "LaunchRecord",
    "ListSet",
    "LogEntry",
    "LogHeader",
    "LogLine",
    "LogWriter",
    "MetricsRecord",
    "PairResult",
    "PrepareRecord",
    "Record",
    "RecordError",
    "ReversalRecord",
    "RunState",
    "SkippedSampleEntry",
    "SyntheticMeta",
    "TrainRecord",
    "TrainingLog",
    "iter_log",
    "parse_log_line",
    "read_log",
]
