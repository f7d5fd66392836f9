"""Public entry points of the interlace op: argument checks, backend choice, torch.library ops.

`tinlib::interlace` and `tinlib::interlace_backward` are torch.library custom ops with fake
(meta) implementations and an autograd formula, so torch.compile traces models through them
without graph breaks; the chosen backend runs inside the op.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Optional

import torch

from . import reference

GRAD_MODES = ("adjoint", "mmcv")
BACKENDS = ("auto", "reference", "triton")
BACKEND_ENV = "TINLIB_INTERLACE_BACKEND"
_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_HAS_TRITON = importlib.util.find_spec("triton") is not None


def _impl(backend: str):
    if backend == "triton":
        from . import triton_kernels  # imported on first use: importing triton is slow

        return triton_kernels
    return reference


@torch.library.custom_op("tinlib::interlace", mutates_args=())
def _interlace_op(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                  grad_mode: str, backend: str) -> torch.Tensor:
    if x.numel() == 0:
        return torch.zeros(x.shape, dtype=x.dtype, device=x.device)
    return _impl(backend).forward(x, offset, weight)


@_interlace_op.register_fake
def _(x, offset, weight, grad_mode, backend):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


@torch.library.custom_op("tinlib::interlace_backward", mutates_args=())
def _interlace_backward_op(grad_out: torch.Tensor, x: Optional[torch.Tensor], offset: torch.Tensor,
                           weight: torch.Tensor, grad_mode: str, backend: str, need_x: bool,
                           need_params: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if grad_out.numel() == 0:
        gx, goff, gw = grad_out.new_zeros(grad_out.shape), offset.new_zeros(offset.shape), weight.new_zeros(weight.shape)
    else:
        gx, goff, gw = _impl(backend).backward(grad_out, x, offset, weight, grad_mode, need_x, need_params)
    # a custom op cannot return None (nor one tensor twice): unneeded gradients are empty tensors
    return (gx if need_x else grad_out.new_empty(0), goff if need_params else grad_out.new_empty(0),
            gw if need_params else grad_out.new_empty(0))


@_interlace_backward_op.register_fake
def _(grad_out, x, offset, weight, grad_mode, backend, need_x, need_params):
    # all outputs are fresh contiguous tensors
    return (grad_out.new_empty(grad_out.shape) if need_x else grad_out.new_empty(0),
            offset.new_empty(offset.shape) if need_params else grad_out.new_empty(0),
            weight.new_empty(weight.shape) if need_params else grad_out.new_empty(0))


def _setup_context(ctx, inputs, output):
    x, offset, weight, grad_mode, backend = inputs
    need_params = offset.requires_grad or weight.requires_grad
    # x is only read again for the offset/weight gradients; don't keep it alive otherwise
    ctx.save_for_backward(x if need_params else None, offset, weight)
    ctx.grad_mode, ctx.backend = grad_mode, backend


def _backward(ctx, grad_out):
    x, offset, weight = ctx.saved_tensors
    need_x, need_offset, need_weight = ctx.needs_input_grad[:3]
    gx, goff, gw = _interlace_backward_op(grad_out, x, offset, weight, ctx.grad_mode, ctx.backend,
                                          need_x, need_offset or need_weight)
    return (gx if need_x else None, goff if need_offset else None, gw if need_weight else None, None, None)


_interlace_op.register_autograd(_backward, setup_context=_setup_context)


# ---------------------------------------------------------------------------------------------
# argument checks and backend choice

def _check_x(name: str, x) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: x must be a torch.Tensor [N, T, C, HW], got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name}: x must have shape [N, T, C, HW] (rank 4), got rank {x.dim()} {list(x.shape)}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name}: x must be float32, float64, float16 or bfloat16, got {x.dtype}")


def _check_groups(name: str, x: torch.Tensor, groups_of: torch.Tensor, what: str) -> None:
    n, _, c, _ = x.shape
    if groups_of.dim() != 2:
        raise ValueError(f"{name}: {what} must have shape [N, G] (rank 2), got rank {groups_of.dim()} "
                         f"{list(groups_of.shape)}")
    if groups_of.shape[0] != n:
        raise ValueError(f"{name}: batch size of x ({n}) and {what} ({groups_of.shape[0]}) differ")
    groups = groups_of.shape[1]
    if groups == 0 or c % groups or c // groups == 0:
        raise ValueError(f"{name}: channels C={c} must be a positive multiple of the group count G={groups} "
                         f"(C // G channels per group)")
    if groups_of.device != x.device:
        raise ValueError(f"{name}: {what} is on {groups_of.device} but x is on {x.device}")


def _check_grad(name: str, grad) -> None:
    if grad not in GRAD_MODES:
        raise ValueError(f"{name}: grad must be 'adjoint' (true gradient) or 'mmcv' (mmcv's backward), got {grad!r}")


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """'auto' -> $TINLIB_INTERLACE_BACKEND if set, else 'triton' for CUDA tensors when triton is
    installed, else 'reference'. Raises for combinations that cannot run."""
    if backend not in BACKENDS:
        raise ValueError(f"interlace: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
        if backend not in BACKENDS:
            raise ValueError(f"interlace: ${BACKEND_ENV} must be one of {BACKENDS}, got {backend!r}")
        if backend == "auto":
            return "triton" if x.is_cuda and _HAS_TRITON else "reference"
    if backend == "triton":
        if not _HAS_TRITON:
            raise RuntimeError("interlace: backend='triton' but the triton package is not installed; "
                               "use backend='reference'")
        if not x.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError(f"interlace: backend='triton' needs CUDA tensors (x is on {x.device}); "
                               "set TRITON_INTERPRET=1 before importing triton to run it on the CPU, "
                               "or use backend='reference'")
    return backend


# ---------------------------------------------------------------------------------------------
# public API

def interlace(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, grad: str = "adjoint",
              backend: str = "auto") -> torch.Tensor:
    """TIN's fused temporal sampling of the fold channels.

    x: [N, T, C, HW] float; offset: [N, G] float; weight: [N, T, G] float; channel c belongs to
    group g = c // (C // G). With k = floor(offset[n, g]) and f = offset[n, g] - k:
        out[n, t, c] = weight[n, t, g] * ((1 - f) * X(t - k) + f * X(t - k - 1)),
    X(s) = x[n, s, c] for 0 <= s < T, else 0. Returns [N, T, C, HW] in x's dtype.

    Differentiable in x, offset and weight. The offset gradient treats k as a constant (a
    finite difference, as upstream). grad="adjoint": true data gradient; grad="mmcv": the data
    gradient MMAction2 gets from mmcv's tin_shift backward (the shift applied again instead of
    reversed). backend: "reference" (PyTorch, any device), "triton" (CUDA, or CPU under
    TRITON_INTERPRET=1) or "auto" (see resolve_backend).
    """
    _check_x("interlace", x)
    _check_grad("interlace", grad)
    for what, t in (("offset", offset), ("weight", weight)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"interlace: {what} must be a floating-point tensor, got "
                            f"{t.dtype if isinstance(t, torch.Tensor) else type(t).__name__}")
    _check_groups("interlace", x, offset, "offset")
    n, steps, _, _ = x.shape
    if tuple(weight.shape) != (n, steps, offset.shape[1]):
        raise ValueError(f"interlace: weight must have shape [N, T, G] = {[n, steps, offset.shape[1]]}, "
                         f"got {list(weight.shape)}")
    if weight.device != x.device:
        raise ValueError(f"interlace: weight is on {weight.device} but x is on {x.device}")
    if torch.compiler.is_exporting():
        # exporters (ONNX) get the op as standard operators; export needs no backward
        return reference.interlace_composite(x, offset, weight)
    return _interlace_op(x, offset, weight, grad, resolve_backend(backend, x))


def tin_shift(x: torch.Tensor, shift: torch.Tensor, grad: str = "adjoint", backend: str = "auto") -> torch.Tensor:
    """Integer temporal shift per channel group (mmcv's tin_shift semantics).

    x: [N, T, C, HW] float; shift: [N, G] integer; channel c is in group g = c // (C // G):
    out[n, t, c] = x[n, t - s, c] if 0 <= t - s < T else 0, s = shift[n, g] (a positive shift
    moves content later in time). grad="adjoint": true gradient (the opposite shift);
    grad="mmcv": mmcv's backward, which applies the same forward shift to the gradient again.
    shift gets no gradient.
    """
    _check_x("tin_shift", x)
    _check_grad("tin_shift", grad)
    if not isinstance(shift, torch.Tensor):
        raise TypeError(f"tin_shift: shift must be an integer tensor [N, G], got {type(shift).__name__}")
    if shift.is_floating_point() or shift.is_complex() or shift.dtype == torch.bool:
        raise TypeError(f"tin_shift: shift must be an integer tensor (got {shift.dtype}); round it first, "
                        "or use interlace() for fractional offsets")
    _check_groups("tin_shift", x, shift, "shift")
    n, steps, _, _ = x.shape
    # an integer shift is interlace with f = 0 and unit weights; clamping first keeps the float exact
    offset = shift.clamp(-(steps + 1), steps + 1).to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    weight = torch.ones((n, steps, shift.shape[1]), dtype=offset.dtype, device=x.device)
    return _interlace_op(x, offset, weight, grad, resolve_backend(backend, x))
