"""Process-wide torch settings of a run (CPU threads, deterministic algorithms, cuDNN autotuning), set
for the run and restored afterwards, so that a run in a notebook kernel leaves the kernel as it was."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch

# cuBLAS needs this workspace setting for deterministic matrix products on CUDA
CUBLAS_WORKSPACE = ("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def current_torch_settings() -> dict:
    """The settings :func:`torch_settings` may change: threads, determinism and the cuDNN flags."""
    return {"threads": torch.get_num_threads(), "deterministic": torch.are_deterministic_algorithms_enabled(),
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
            "cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark}


def _restore(saved: dict) -> None:
    torch.set_num_threads(saved["threads"])
    torch.use_deterministic_algorithms(saved["deterministic"], warn_only=saved["warn_only"])
    torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
    torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]


@contextmanager
def torch_settings(*, threads: int | None = None, deterministic: bool | None = None,
                   cudnn_benchmark: bool = False) -> Iterator[None]:
    """Apply the settings of a run inside the ``with`` block and restore the previous ones after it.

    Args:
        threads: torch CPU threads (None or 0: leave as it is).
        deterministic: True: deterministic algorithms where PyTorch has them (a warning for the
            others), cuDNN deterministic and without autotuning, and cuBLAS's workspace setting
            (``CUBLAS_WORKSPACE_CONFIG``, set only if unset; it stays set). False: only
            ``cudnn.benchmark = cudnn_benchmark``. None: determinism and cuDNN untouched.
        cudnn_benchmark: cuDNN autotuning when not deterministic.
    """
    saved = current_torch_settings()
    try:
        if threads:
            torch.set_num_threads(threads)
        if deterministic:
            os.environ.setdefault(*CUBLAS_WORKSPACE)
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        elif deterministic is not None:
            torch.backends.cudnn.benchmark = cudnn_benchmark
        yield
    finally:
        _restore(saved)


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device, amp: str) -> AbstractContextManager:
    """Mixed precision for the forward passes inside the block: ``amp`` is ``"none"`` (a no-op),
    ``"bf16"`` or ``"fp16"`` (``torch.autocast`` on ``device.type`` with that dtype)."""
    if amp == "none":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])
