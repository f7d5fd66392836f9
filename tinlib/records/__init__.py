"""The files runs write, as typed records (pydantic models), one class per file.

A run is a chain of steps coupled only through these files, so they are defined once, here:
``Record.read(path)`` / ``record.write(path)`` (atomic). Unknown keys are kept and written back,
each file carries its layout's version (``"schema"``, 1 when absent), and a damaged or wrong file
raises :class:`RecordError`, one line naming it. No torch import: ``tinlib zoo`` stays fast.
"""
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
from tinlib.records.log import LogEntry, LogHeader, LogLine, LogWriter, TrainingLog, parse_log_line, read_log
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
    "TrainingLog", "parse_log_line", "read_log",
]
