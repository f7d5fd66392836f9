"""The interlace operator of TIN: ``interlace`` (fractional temporal shift of channel groups with
per-segment weights), ``tin_shift`` (mmcv's integer shift) and ``interlace_composite`` (the same
function in standard PyTorch: the definition, the ONNX path, the tests' oracle). ``dispatch`` picks a
backend, ``eager`` ("reference") or ``triton_kernels``; ``tin_block`` is TIN's whole temporal module
as one op. ``GRAD_MODES`` and ``BACKENDS`` are the accepted values of ``grad`` and ``backend``."""
from .composite import interlace_composite
from .dispatch import BACKEND_ENV, BACKENDS, GRAD_MODES, interlace, resolve_backend, tin_shift

__all__ = ["BACKENDS", "BACKEND_ENV", "GRAD_MODES", "interlace", "interlace_composite", "resolve_backend",
           "tin_shift"]
