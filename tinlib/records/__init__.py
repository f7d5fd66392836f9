"""The files runs write (the only coupling between a run's steps), as pydantic records: ``Record.read``,
``record.write`` (atomic); unknown keys kept, a ``"schema"`` version (1 when absent), and a damaged file
gives a one-line :class:`RecordError`. No torch import: ``tinlib zoo`` stays fast."""
from __future__ import annotations

from tinlib.records.base import Fields, Record, RecordError
from tinlib.records.evaluation import (
    AblationSummary,
    CheckpointInfo,
    DeviceLatency,
    LatencyModel,
    LatencyRecord,
    LatencySetting,
    MetricsRecord,
    PairResult,
    ReversalRecord,
)
from tinlib.records.log import (
    LogEntry,
    LogHeader,
    LogLine,
    LogWriter,
    TrainingLog,
    json_lines,
    parse_log_line,
    read_log,
)
from tinlib.records.preparation import ExtractionMarker, ListSet, PrepareRecord, SyntheticMeta
from tinlib.records.training import BestScore, CheckpointPaths, LaunchRecord, RunState, SkippedSampleEntry, TrainRecord

RECORD_TYPES: tuple[type[Record], ...] = (TrainRecord, RunState, MetricsRecord, ReversalRecord, LatencyRecord,
                                          LaunchRecord, PrepareRecord, SyntheticMeta, ExtractionMarker,
                                          AblationSummary)

__all__ = [
    "RECORD_TYPES", "AblationSummary", "BestScore", "CheckpointInfo", "CheckpointPaths", "DeviceLatency",
    "ExtractionMarker", "Fields", "LatencyModel", "LatencyRecord", "LatencySetting", "LaunchRecord", "ListSet",
    "LogEntry", "LogHeader", "LogLine", "LogWriter", "MetricsRecord", "PairResult", "PrepareRecord", "Record",
    "RecordError", "ReversalRecord", "RunState", "SkippedSampleEntry", "SyntheticMeta", "TrainRecord",
    "TrainingLog", "json_lines", "parse_log_line", "read_log",
]
