"""The training log, ``log.json``: JSON lines from ``tinlib train``, a :class:`LogHeader` per
session, then ``train`` and ``val`` :class:`LogEntry` lines; read whole, appended a line at a time."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar

from pydantic import Field

from tinlib.records.base import Fields, Number, PathLike, RecordError, omitted, read_text


class LogHeader(Fields):
    """The first line of every training session in ``log.json``: seed, processes, learning-rate
    scaling, iterations per epoch, the epoch it resumed from, and the environment (``env_info``:
    package versions and device). ``schema_version`` is the version of the log's layout."""

    KIND: ClassVar[str] = "log header"
    WRITER: ClassVar[str] = "the training (`tinlib train`)"

    schema_version: int = Field(default=1, alias="schema")
    env_info: dict[str, Any] | None = omitted()
    seed: int | None = omitted()
    config_name: str | None = omitted()
    work_dir: str | None = omitted()
    world_size: int | None = omitted()
    lr_scaling: dict[str, Any] | None = omitted()
    iters_per_epoch: int | None = omitted()
    resumed_from_epoch: int | None = omitted()
    deterministic: bool | None = omitted()
    amp: str | None = omitted()
    sync_bn: bool | None = omitted()
    git: dict[str, Any] | None = omitted()
    time: str | None = omitted()


class LogEntry(Fields):
    """One ``train`` or ``val`` line of ``log.json`` (MMAction2's field names). ``train``: averages over
    the last ``train.log_interval`` iterations and all processes; ``iter`` 1-based within ``epoch``
    (1-based); accuracies fractions on the training batches; ``time`` / ``data_time`` seconds per
    iteration; ``memory`` the peak CUDA MiB (0 on the CPU); ``grad_norm`` only when gradients are
    clipped. ``val``: the validation metrics after an epoch, ``iter`` the number of videos."""

    KIND: ClassVar[str] = "log entry"
    WRITER: ClassVar[str] = "the training (`tinlib train`)"

    mode: str
    epoch: int
    iter: int
    lr: Number | None = omitted()
    loss_cls: Number | None = omitted()
    top1_acc: Number | None = omitted()
    top5_acc: Number | None = omitted()
    mean_class_accuracy: Number | None = omitted()
    grad_norm: Number | None = omitted()
    time: Number | None = omitted()
    data_time: Number | None = omitted()
    loss: Number | None = omitted()
    memory: int | None = omitted()


LogLine = LogHeader | LogEntry


def parse_log_line(data: Any, source: PathLike | None = None) -> LogLine:
    """One parsed ``log.json`` line: a :class:`LogEntry` when it has ``mode``, else a :class:`LogHeader`;
    :class:`RecordError` naming ``source`` (``file:line``) when it is neither."""
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
        """The entries of one mode (``"train"`` or ``"val"``), in file order."""
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


def json_lines(path: Path, text: str, damaged: str) -> tuple[list[tuple[int, Any]], int]:
    """The JSON value of each non-blank line of ``text`` (read from ``path``) with its 1-based line
    number, and how many lines were skipped: 1 when the last line is not JSON (a write cut off by a
    kill), else 0. Any other line that is not JSON raises :class:`RecordError` ``path:line: damaged``."""
    numbered = [(i, line) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]
    values: list[tuple[int, Any]] = []
    for pos, (number, line) in enumerate(numbered):
        try:
            values.append((number, json.loads(line)))
        except ValueError:
            if pos == len(numbered) - 1:
                return values, 1
            raise RecordError(f"{path}:{number}: {damaged}") from None
    return values, 0


def read_log(path: PathLike) -> TrainingLog:
    """Every line of a training log (``log.json``); a last line that is not JSON (a write cut off by a
    kill) is skipped and counted in ``skipped``. :class:`RecordError` naming the file (and line) when
    it is missing or unreadable, or a line other than the last is not a log line."""
    path = Path(path)
    values, skipped = json_lines(path, read_text(LogEntry, path),
                                 "not a training log line (not JSON); the log is damaged: delete the line or the file")
    return TrainingLog(path, [parse_log_line(data, f"{path}:{number}") for number, data in values], skipped)


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
        """Append one line and flush it; a dict is checked first (:class:`RecordError` if no log line)."""
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
