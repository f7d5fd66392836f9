"""The interlace operator of TIN (see dispatch.interlace / dispatch.tin_shift for the contract).

- ``tin_shift(x, shift, grad="adjoint")``: integer per-group temporal shift (mmcv semantics).
- ``interlace(x, offset, weight, grad="adjoint", backend="auto")``: fractional shift with
  linear interpolation and per-segment weights, the fused core of TIN's TemporalInterlace.
- ``interlace_composite(x, offset, weight)``: the same forward from standard torch ops only.

Backends: "reference" (PyTorch, any device) and "triton" (CUDA; CPU under TRITON_INTERPRET=1);
"auto" picks triton for CUDA tensors, and $TINLIB_INTERLACE_BACKEND overrides it.
"""
from .dispatch import BACKENDS, GRAD_MODES, interlace, resolve_backend, tin_shift
from .reference import interlace_composite

__all__ = ["BACKENDS", "GRAD_MODES", "interlace", "interlace_composite", "resolve_backend", "tin_shift"]
