"""Saving tinlib checkpoints (atomically) and releasing them under model-zoo names with a hash suffix."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from torch import nn

from tinlib.checkpoint.arch import model_arch
from tinlib.checkpoint.read import extract_state_dict, read_checkpoint
from tinlib.io import atomic_torch_save, sha256_of


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict | None = None, **extra: Any) -> Path:
    """Write ``model``'s state dict (on the CPU) to ``path`` atomically (a temporary file renamed over it).

    ``meta`` adds to the ``meta`` dict, which records tinlib's layout (``format``, ``tinlib_version``,
    ``arch``, ``shift_div``, ``num_classes``, ``num_segments``); ``extra`` holds further top-level
    entries (``optimizer``, ``scheduler``, ``rng``, ...).
    """
    from tinlib import __version__

    arch = model_arch(model)
    info = {"format": "tinlib", "tinlib_version": __version__, "arch": getattr(model, "arch", None),
            "shift_div": arch.shift_div if arch is not None else None,
            "num_classes": getattr(model, "num_classes", None), "num_segments": getattr(model, "num_segments", None)}
    info.update(meta or {})
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_torch_save(path, {"state_dict": state, "meta": info, **extra})


def publish_checkpoint(src: str | Path, out_dir: str | Path, name: str) -> Path:
    """Release the training checkpoint ``src`` as ``out_dir/<name>-<first 8 hex of sha256>.pth``
    (MMAction2's model-zoo naming), keeping only weights and meta (no optimizer or scheduler state).

    Raises:
        CheckpointError: ``src`` cannot be read or holds no state dict.
    """
    checkpoint = read_checkpoint(src)
    slim = {"state_dict": extract_state_dict(checkpoint, src), "meta": checkpoint.get("meta", {})}
    out_dir = Path(out_dir)
    tmp = atomic_torch_save(out_dir / f".{name}.unhashed.pth", slim)
    final = out_dir / f"{name}-{sha256_of(tmp)[:8]}.pth"
    shutil.move(str(tmp), final)
    return final
