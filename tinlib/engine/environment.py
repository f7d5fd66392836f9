"""What a run records about where it ran: the git commit, package versions, the machine, the time."""
from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch


def git_info() -> dict:
    """``{"commit": sha | None, "dirty": bool | None}`` of the tin-kit checkout this package runs
    from (None outside a git checkout). ``dirty`` says whether tracked files differ from the
    commit, leaving out ``results/``: what runs write there does not change the code that
    produced a run."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = None
        if commit:
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                     ":(exclude)results"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout
            dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"commit": commit, "dirty": dirty}


def package_versions() -> dict:
    """Versions of python, tinlib, torch, torchvision, numpy, triton (when installed), CUDA and cuDNN."""
    import torchvision

    import tinlib

    versions = {"python": platform.python_version(), "tinlib": tinlib.__version__, "torch": torch.__version__,
                "torchvision": torchvision.__version__, "numpy": np.__version__}
    try:
        import triton

        versions["triton"] = triton.__version__
    except ImportError:
        pass
    versions["cuda"] = torch.version.cuda
    versions["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return versions


def device_info(device: torch.device | str | None = None) -> dict:
    """Platform, CPU, core count, torch threads, host name, visible GPUs and (when given) ``device``."""
    info: dict[str, Any] = {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
                            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                            "hostname": platform.node()}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    if device is not None:
        info["device"] = str(device)
    return info


def now_iso() -> str:
    """The current UTC time as ISO 8601 to the second, e.g. ``2024-05-01T12:00:00+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
