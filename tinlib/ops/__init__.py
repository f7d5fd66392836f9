"""The interlace operator of TIN.

- ``tin_shift(x, shift, grad="adjoint", backend="auto")``: integer per-group temporal shift
  (mmcv's semantics).
- ``interlace(x, offset, weight, grad="adjoint", backend="auto")``: fractional shift with linear
  interpolation and per-segment weights, the fused core of TIN's TemporalInterlace.
- ``interlace_composite(x, offset, weight)``: the same function in a few lines of standard
  PyTorch; the definition to read, the ONNX export path and the tests' oracle.

Modules: ``composite`` (the definition), ``eager`` (pure-PyTorch kernel for any device, backend
"reference"), ``triton_kernels`` (backend "triton": CUDA, or CPU under TRITON_INTERPRET=1),
``dispatch`` (argument checks, backend choice, torch.library registration), ``tin_block`` (TIN's
whole temporal module -- pooling, offset/weight nets, interlace, pass-through channels -- as one op
on the eager backend, used by tinlib.models.TemporalInterlace).
``GRAD_MODES`` and ``BACKENDS`` are the accepted values of ``grad`` and ``backend``.
"""
from .composite import interlace_composite
from .dispatch import BACKEND_ENV, BACKENDS, GRAD_MODES, interlace, resolve_backend, tin_shift

__all__ = ["BACKENDS", "BACKEND_ENV", "GRAD_MODES", "interlace", "interlace_composite", "resolve_backend",
           "tin_shift"]
