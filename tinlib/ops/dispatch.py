"""Public entry points of the interlace op: argument checks, backend choice and the torch.library ops
``tinlib::interlace``/``interlace_backward`` (traced by torch.compile without graph breaks). A Triton
kernel picked by "auto" never stops a run: its first forward and backward per (device type, dtype) are
checked against the eager backend; an error or mismatch logs a warning and switches that key to eager."""
from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

from . import eager
from .composite import interlace_composite

logger = logging.getLogger(__name__)

GRAD_MODES = ("adjoint", "mmcv")  # data gradient of the shift: the true one, or mmcv's tin_shift backward
BACKENDS = ("auto", "reference", "triton")
BACKEND_ENV = "TINLIB_INTERLACE_BACKEND"
_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_HAS_TRITON = importlib.util.find_spec("triton") is not None


def _triton_kernels() -> ModuleType:
    from . import triton_kernels  # imported on first use: importing triton is slow

    return triton_kernels


# "auto" with Triton: check the first calls, use the eager backend after any failure

_Key = tuple[str, torch.dtype]  # (device type, dtype of x)
_validated: set[tuple[str, torch.dtype, str]] = set()  # (device type, dtype, pass) whose check passed
_fallen_back: dict[_Key, str] = {}  # keys where "auto" runs the eager backend -> the reason
# Largest |triton - eager| accepted, relative to max |eager| of that tensor, by its dtype. out and
# grad_x interpolate between two frames: equal up to rounding to the output dtype. The offset and
# weight gradients are sums over C // G * HW * T products accumulated in another order (float32
# unless float64), the offset one a difference of two such sums; a wrong kernel is off by far more.
_DATA_TOLERANCE = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}
_SUM_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-3, torch.float16: 1e-2, torch.bfloat16: 3e-2}


def _auto_tries_triton(x: torch.Tensor) -> bool:
    """Whether "auto" tries the Triton kernels for x: a CUDA tensor, with triton installed."""
    return x.is_cuda and _HAS_TRITON


def _mismatch(got: Any, want: Any) -> str | None:
    """None when the Triton results `got` match the eager results `want`, else what differs. Both are
    a forward's output tensor or a backward's (grad_x, grad_offset, grad_weight), None where not computed."""
    if isinstance(want, torch.Tensor):
        pairs = [("out", got, want, _DATA_TOLERANCE)]
    else:
        pairs = list(zip(("grad_x", "grad_offset", "grad_weight"), got, want,
                         (_DATA_TOLERANCE, _SUM_TOLERANCE, _SUM_TOLERANCE)))
    for name, g, w, tolerance in pairs:
        if w is None:
            continue
        if g is None or g.shape != w.shape or g.dtype != w.dtype:
            found = "nothing" if g is None else f"{g.dtype} {list(g.shape)}"
            return f"{name} is {found}, expected {w.dtype} {list(w.shape)}"
        # where the eager result is not finite (inf/nan in the input) the two may legitimately differ
        finite = torch.isfinite(w)
        g_finite, w_finite = g[finite].double(), w[finite].double()
        if not torch.isfinite(g_finite).all():
            return f"{name} has inf/nan where the eager backend's values are finite"
        if g_finite.numel():
            diff, scale = (g_finite - w_finite).abs().max().item(), w_finite.abs().max().item()
            if diff > tolerance[w.dtype] * scale:
                return f"{name} differs by up to {diff:.3g} (largest value {scale:.3g})"
    return None


def _fall_back(key: _Key, reason: str) -> None:
    _fallen_back[key] = reason
    logger.warning("interlace: %s for %s %s tensors; this process now uses the eager PyTorch backend "
                   "('reference') for them. Set %s=reference to choose it from the start, or %s=triton "
                   "to make this an error.", reason, key[0], key[1], BACKEND_ENV, BACKEND_ENV)


def _run_checked(pass_name: str, key: _Key, run: Callable[[ModuleType], Any]) -> Any:
    """`run(backend_module)` under "auto" with Triton. The first call per key and pass also runs
    the eager backend and compares; a Triton error or mismatch returns the eager result and
    switches the key to the eager backend for good."""
    if key in _fallen_back:
        return run(eager)
    try:
        got = run(_triton_kernels())
    except torch.cuda.OutOfMemoryError:
        raise  # out of memory is not the kernel's fault, and the eager backend needs more
    except Exception as err:  # noqa: BLE001 -- triton failing to import, compile or launch, whatever the type
        _fall_back(key, f"the Triton {pass_name} kernel failed ({type(err).__name__}: "
                        f"{str(err).strip().splitlines()[0] if str(err).strip() else 'no message'})")
        return run(eager)
    if (*key, pass_name) in _validated:
        return got
    want = run(eager)
    problem = _mismatch(got, want)
    if problem is not None:
        _fall_back(key, f"the Triton {pass_name} result does not match the eager backend's: {problem}")
        return want
    _validated.add((*key, pass_name))
    return got


def _run(backend: str, pass_name: str, like: torch.Tensor, run: Callable[[ModuleType], Any]) -> Any:
    """Run `run(backend_module)` for an op-level backend name ("reference", "triton", or "auto"
    meaning checked Triton, see _requested_backend); `like` is x or grad_out."""
    if backend == "auto":
        return _run_checked(pass_name, (like.device.type, like.dtype), run)
    return run(_triton_kernels() if backend == "triton" else eager)


# torch.library ops

@torch.library.custom_op("tinlib::interlace", mutates_args=())
def _interlace_op(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                  grad: str, backend: str) -> torch.Tensor:
    if x.numel() == 0:
        return torch.zeros(x.shape, dtype=x.dtype, device=x.device)
    return _run(backend, "forward", x, lambda impl: impl.forward(x, offset, weight))


@_interlace_op.register_fake
def _(x, offset, weight, grad, backend):
    return torch.empty(x.shape, dtype=x.dtype, device=x.device)


@torch.library.custom_op("tinlib::interlace_backward", mutates_args=())
def _interlace_backward_op(grad_out: torch.Tensor, x: torch.Tensor | None, offset: torch.Tensor,
                           weight: torch.Tensor, grad: str, backend: str, need_x: bool,
                           need_params: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if grad_out.numel() == 0:
        gx, goff, gw = (grad_out.new_zeros(grad_out.shape), offset.new_zeros(offset.shape),
                        weight.new_zeros(weight.shape))
    else:
        gx, goff, gw = _run(backend, "backward", grad_out,
                            lambda impl: impl.backward(grad_out, x, offset, weight, grad, need_x, need_params))
    # a custom op cannot return None (nor one tensor twice): unneeded gradients are empty tensors
    return (gx if need_x else grad_out.new_empty(0), goff if need_params else grad_out.new_empty(0),
            gw if need_params else grad_out.new_empty(0))


@_interlace_backward_op.register_fake
def _(grad_out, x, offset, weight, grad, backend, need_x, need_params):
    # all outputs are fresh contiguous tensors
    return (grad_out.new_empty(grad_out.shape) if need_x else grad_out.new_empty(0),
            offset.new_empty(offset.shape) if need_params else grad_out.new_empty(0),
            weight.new_empty(weight.shape) if need_params else grad_out.new_empty(0))


def _setup_context(ctx, inputs, output):
    x, offset, weight, grad, backend = inputs
    need_params = offset.requires_grad or weight.requires_grad
    # x is only read again for the offset/weight gradients; don't keep it alive otherwise
    ctx.save_for_backward(x if need_params else None, offset, weight)
    ctx.grad, ctx.backend = grad, backend


def _backward(ctx, grad_out):
    x, offset, weight = ctx.saved_tensors
    need_x, need_offset, need_weight = ctx.needs_input_grad[:3]
    gx, goff, gw = _interlace_backward_op(grad_out, x, offset, weight, ctx.grad, ctx.backend,
                                          need_x, need_offset or need_weight)
    return (gx if need_x else None, goff if need_offset else None, gw if need_weight else None, None, None)


_interlace_op.register_autograd(_backward, setup_context=_setup_context)


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


def _requested_backend(backend: str, x: torch.Tensor) -> str:
    """The backend argument of the op for x: "reference", "triton" (asked for explicitly, errors
    raise) or "auto" (Triton picked by "auto": checked, with the eager backend as the fallback).
    Raises for names that do not exist and for combinations that cannot run."""
    if backend not in BACKENDS:
        raise ValueError(f"interlace: backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        backend = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
        if backend not in BACKENDS:
            raise ValueError(f"interlace: ${BACKEND_ENV} must be one of {BACKENDS}, got {backend!r}")
        if backend == "auto":
            return "auto" if _auto_tries_triton(x) else "reference"
    if backend == "triton":
        if not _HAS_TRITON:
            raise RuntimeError("interlace: backend='triton' but the triton package is not installed; "
                               "use backend='reference'")
        if not x.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise RuntimeError(f"interlace: backend='triton' needs CUDA tensors (x is on {x.device}); "
                               "set TRITON_INTERPRET=1 before importing triton to run it on the CPU, "
                               "or use backend='reference'")
    return backend


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """The backend that runs for x (only its device and dtype are read): "reference" or "triton".

    "auto" means $TINLIB_INTERLACE_BACKEND if set, else "triton" for CUDA tensors when triton is
    installed (unless a Triton kernel failed its check for x's device type and dtype in this
    process), else "reference". ValueError for unknown names, RuntimeError for combinations that cannot run.
    """
    requested = _requested_backend(backend, x)
    if requested == "auto":
        return "reference" if (x.device.type, x.dtype) in _fallen_back else "triton"
    return requested


# public API

def interlace(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, grad: str = "adjoint",
              backend: str = "auto") -> torch.Tensor:
    """TIN's temporal interlace of channel groups: each group shifted later in time by a fractional
    offset (linear interpolation between the integer shifts around it), each output frame weighted.

    x: [N, T, C, HW] float32/float64/float16/bfloat16, any strides (channel c in group g = c // (C // G));
    offset: [N, G] float; weight: [N, T, G] float -> [N, T, C, HW] in x's dtype. With
    k = floor(offset[n, g]), f = offset[n, g] - k and X(s) = x[n, s, c] for 0 <= s < T, else 0:
        out[n, t, c] = weight[n, t, g] * ((1 - f) * X(t - k) + f * X(t - k - 1))

    grad (GRAD_MODES): the data gradient, "adjoint" (the true one) or "mmcv" (what MMAction2 gets
    from mmcv's tin_shift backward: the shift applied again instead of reversed); the offset and
    weight gradients are the same in both, and hold k constant (a finite difference, as in TIN).
    backend (BACKENDS): "reference" (PyTorch, any device), "triton" (CUDA, or CPU under
    TRITON_INTERPRET=1) or "auto" (see resolve_backend). Only the gradients autograd asks for are computed.
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
        return interlace_composite(x, offset, weight)
    return _interlace_op(x, offset, weight, grad, _requested_backend(backend, x))


def tin_shift(x: torch.Tensor, shift: torch.Tensor, grad: str = "adjoint", backend: str = "auto") -> torch.Tensor:
    """Integer temporal shift per channel group (mmcv's tin_shift semantics).

    x: [N, T, C, HW] float (channel c in group g = c // (C // G)); shift: [N, G] integer tensor (a
    float shift is refused: use interlace()), no gradient -> [N, T, C, HW] in x's dtype:
    out[n, t, c] = x[n, t - s, c] if 0 <= t - s < T else 0, s = shift[n, g] (positive: later in time).
    grad: "adjoint" (the true gradient, the opposite shift) or "mmcv" (mmcv's backward, which applies
    the forward shift to the gradient again); backend as for interlace().
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
    return _interlace_op(x, offset, weight, grad, _requested_backend(backend, x))
