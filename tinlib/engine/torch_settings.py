"""Process-wide torch settings of a run (CPU threads, deterministic algorithms, cuDNN autotuning), set
for the run and restored afterwards, so that a run in a notebook kernel leaves the kernel as it was."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch


@contextmanager
def torch_settings(*, threads: int | None = None, deterministic: bool | None = None,
                   cudnn_benchmark: bool = False) -> Iterator[None]:
    """Apply the settings of a run inside the ``with`` block and restore the previous ones after it.

    ``threads``: torch CPU threads (None or 0: leave as it is). ``deterministic``: True takes
    deterministic algorithms where PyTorch has them (a warning for the others), cuDNN deterministic
    without autotuning, and cuBLAS's workspace setting (``CUBLAS_WORKSPACE_CONFIG``, set only if
    unset; it stays set); False only sets ``cudnn.benchmark = cudnn_benchmark``; None leaves
    determinism and cuDNN untouched.
    """
    cudnn = torch.backends.cudnn
    saved_threads, saved_deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    saved_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    saved_cudnn = cudnn.deterministic, cudnn.benchmark
    try:
        if threads:
            torch.set_num_threads(threads)
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic matrix products on CUDA
            torch.use_deterministic_algorithms(True, warn_only=True)
            cudnn.deterministic = True
            cudnn.benchmark = False
        elif deterministic is not None:
            cudnn.benchmark = cudnn_benchmark
        yield
    finally:
        torch.set_num_threads(saved_threads)
        torch.use_deterministic_algorithms(saved_deterministic, warn_only=saved_warn_only)
        cudnn.deterministic, cudnn.benchmark = saved_cudnn


def autocast(device: torch.device, amp: str) -> AbstractContextManager:
    """Mixed precision for the forward passes inside the block: ``amp`` is ``"none"`` (a no-op),
    ``"bf16"`` or ``"fp16"`` (``torch.autocast`` on ``device.type`` with that dtype)."""
    if amp == "none":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[amp])
