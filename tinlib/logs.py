"""Logging for tinlib: modules call ``logging.getLogger(__name__)``, the entry points
:func:`setup_logging`. Under torchrun only rank 0 prints INFO lines (every rank prints warnings and
errors, prefixed with its rank), so that 8 processes do not print every line 8 times."""
from __future__ import annotations

import logging
import os
import sys
from typing import IO

_HANDLER_NAME = "tinlib"


def process_rank() -> int:
    """The global rank: torchrun's ``RANK``, else ``SLURM_PROCID`` in an srun step of several tasks
    (the rule of ``tinlib.engine.slurm.launch_layout``), else 0."""
    env = os.environ
    srun_step = env.get("SLURM_JOB_ID") and env.get("SLURM_NTASKS", "1") not in ("", "0", "1")
    rank = env.get("RANK") or (env.get("SLURM_PROCID") if srun_step and "WORLD_SIZE" not in env else None)
    try:
        return int(rank or 0)
    except ValueError:
        return 0


class _RankFilter(logging.Filter):
    """Lets INFO and below through on rank 0 only; tags records of other ranks with their rank."""

    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank_prefix = f"[rank {self.rank}] " if self.rank else ""
        return self.rank == 0 or record.levelno >= logging.WARNING


def setup_logging(level: int = logging.INFO, *, stream=None) -> logging.Logger:
    """Send the ``tinlib`` loggers to ``stream`` (default: stderr) as ``message`` for INFO and
    ``warning: message`` for warnings and errors, so a log in make or a cluster job reads as the
    program's own output. Calling it again only changes the level (and the stream when given)."""
    root = logging.getLogger("tinlib")
    root.setLevel(level)
    root.propagate = False
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = _StderrHandler()
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(_Formatter())
        handler.addFilter(_RankFilter(process_rank()))
        root.addHandler(handler)
    if isinstance(handler, _StderrHandler):
        handler.fixed_stream = stream
    return root


class _StderrHandler(logging.StreamHandler):
    """Writes to ``fixed_stream`` when one was given, else to whatever ``sys.stderr`` is at the time
    of the call (a notebook kernel, pytest's capture or a redirect may replace it after set-up)."""

    fixed_stream: IO[str] | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = self.fixed_stream if self.fixed_stream is not None else sys.stderr
        super().emit(record)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        prefix = getattr(record, "rank_prefix", "")
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return prefix + text
