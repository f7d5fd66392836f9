"""Fast checks before anything heavy starts: is the dataset there, how many GPUs are visible.
Standard library only: make runs the data check with the system Python before the virtual
environment exists, so a missing dataset is reported within seconds.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from tinlib.data.releases import PREPARE_SUMMARY, SPLITS, choose_splits, release
from tinlib.errors import UserError


class DataMissing(UserError):
    """``DATA_ROOT`` is unset or does not hold the release; the message says what to download."""


def _instructions(dataset: str, splits: Sequence[str] = SPLITS) -> str:
    """What to download and the make target to run then: ``evaluate-published-*`` when only the val
    split is needed (what that target checks), else ``reproduce-*``."""
    rel = release(dataset)
    target = "evaluate-published" if tuple(splits) == ("val",) else "reproduce"
    return f"{rel.download_help()}\n  then: make {target}-{rel.key} DATA_ROOT=/path/to/{rel.folder}"


def check_data(dataset: str, data_root: str | os.PathLike | None, lists_dir: str | os.PathLike | None = None,
               splits: str | Sequence[str] = SPLITS) -> None:
    """Check, from directory entries alone, that ``data_root`` holds the release files of ``dataset``
    that ``splits`` need (``("val",)`` to test a published checkpoint: the Kinetics-400 train clips
    may be absent then), or lists prepared before in ``lists_dir`` (default ``data_root``).

    Raises:
        DataMissing: saying what is missing, what to download and where to put it, or naming
            an unknown split.
    """
    try:
        splits = choose_splits(splits)
    except ValueError as err:
        raise DataMissing(str(err)) from None
    rel = release(dataset)
    how = _instructions(dataset, splits)
    if not data_root:
        raise DataMissing(f"DATA_ROOT is not set. Download {how}")
    root = Path(data_root)
    if not root.is_dir():
        raise DataMissing(f"DATA_ROOT={root} does not exist. Download {how}")
    lists_root = Path(lists_dir) if lists_dir else root
    if all((lists_root / n).is_file() for n in rel.lists_of(splits)) and (lists_root / PREPARE_SUMMARY).is_file():
        return  # prepared before
    missing = [p for p in rel.annotation_paths(root, splits) if not p.is_file()]
    for alternatives in rel.media_dirs_of(splits):
        if not any((root / name).is_dir() for name in alternatives):
            missing.append(root / alternatives[0])
    if missing:
        listing = "\n".join(f"  missing: {p}" for p in missing)
        raise DataMissing(f"DATA_ROOT={root} does not hold the {dataset} release:\n{listing}\nDownload {how}")


def detect_gpus() -> int:
    """Visible CUDA devices (at least 1), from ``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L``; no torch import."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return max(1, len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"]))
    smi = shutil.which("nvidia-smi")
    if smi:
        import subprocess

        try:
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20).stdout
            return max(1, sum(1 for line in out.splitlines() if line.startswith("GPU ")))
        except (OSError, subprocess.SubprocessError):
            pass
    return 1
