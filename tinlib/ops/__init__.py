"""TIN's interlace operator: ``interlace`` (fractional temporal shift of channel groups, weighted per
segment), ``tin_shift`` (mmcv's integer shift) and ``interlace_composite`` (standard PyTorch: the
definition, the ONNX path, the tests' oracle); backends ``eager`` and ``triton_kernels``."""
from .composite import interlace_composite
from .dispatch import BACKEND_ENV, BACKENDS, GRAD_MODES, interlace, resolve_backend, tin_shift

__all__ = ["BACKENDS", "BACKEND_ENV", "GRAD_MODES", "interlace", "interlace_composite", "resolve_backend",
           "tin_shift"]
