"""Correctness of TIN's temporal module as one op (:mod:`tinlib.ops.tin_block`, what CPU training
runs): output and gradients in float32 at TIN-R50's four stages, against the composed steps in
float64 on the same (float32-rounded) values."""
from __future__ import annotations

import copy
import math

import torch

from tinlib.doctor.checks import Check
from tinlib.doctor.opcheck import SEGMENTS, STAGE_SHAPES, RelError, relative_error, verdict
from tinlib.models import TemporalInterlace
from tinlib.ops import tin_block

SHIFT_DIV = 4  # TIN-R50: the fold is a quarter of the block input's channels
# Block inputs [N*T, C, H, W] of TIN-R50 at 224 px, one per stage: the fold shapes of
# tinlib.doctor.opcheck.STAGE_SHAPES (C/4 channels, H*W) as the module sees them (4 x the fold
# channels, H = W). One video of T = 8 segments: the op's arithmetic does not depend on N.
BLOCK_SHAPES: dict[str, tuple[int, int, int, int]] = {
    stage: (SEGMENTS, SHIFT_DIV * fold, math.isqrt(hw), math.isqrt(hw)) for stage, (fold, hw) in STAGE_SHAPES.items()
}
DTYPE = torch.float32  # the fused op runs in float32 (training) and float64 (tests) only
# Largest accepted max|fused - reference| / max|reference|, as (values, parameter gradients).
# The fused op computes in float32 (unit roundoff 6e-8), like the composed steps in float32. The
# offsets and weights come from the nets' sums of 3F products (up to 1536 at stage 4) through a
# sigmoid, and y and grad_x are two frames interpolated at those offsets: measured here up to
# 7e-7 relative (up to 3e-6 with offsets where the sigmoid saturates); "values" (y, grad_x)
# allow 3e-5. The parameters' gradients add up T*F*H*W products before the nets' backward
# (1.6 million terms at stage 1), in another order than autograd's: measured up to 5e-6 (1e-5
# where the sigmoid saturates); "params" allow 1e-4. A wrong tap, offset, weight or gradient
# term gives errors of order 1e-2 to 1.
TOLERANCE = (3e-5, 1e-4)
GRAD_MODES_FULL = ("adjoint", "mmcv")  # the data gradient of the shift: the true one, and mmcv's
GRAD_MODES_QUICK = ("adjoint",)  # the configs' default (model.interlace_grad)


def spread_module(channels: int, seed: int = 0) -> TemporalInterlace:
    """A float32 ``TemporalInterlace`` for ``channels`` block channels whose parameters are drawn
    (seeded) so that on post-ReLU inputs its offsets spread over (-2, 2) with fractional parts
    and its weights over (0, 2): the module's own init starts every offset near +0.5."""
    module = TemporalInterlace(channels, SEGMENTS, SHIFT_DIV, backend="reference")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            fan_in = param[0].numel() if param.dim() > 1 else 1
            scale = 1.0 if name.endswith("bias") else 1.5 / math.sqrt(fan_in)
            param.copy_(torch.randn(param.shape, generator=generator) * scale)
    return module.to(DTYPE)


def block_inputs(shape: tuple[int, int, int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, grad_y), both [T, C, H, W] float32 for ``shape`` = (T, C, H, W): x non-negative like
    the ReLU output that a block receives, grad_y standard normal."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator).abs()
    return x.to(DTYPE), torch.randn(shape, generator=generator).to(DTYPE)


def net_params(module: TemporalInterlace) -> tin_block.NetParams:
    """The parameters of ``module``'s OffsetNet and WeightNet in the order the fused op takes them."""
    offset, weight = module.offset_net, module.weight_net
    assert offset.conv.bias is not None and weight.conv.bias is not None
    return tin_block.NetParams(offset.conv.weight, offset.conv.bias, offset.fc1.weight, offset.fc1.bias,
                               offset.fc2.weight, offset.fc2.bias, weight.conv.weight, weight.conv.bias)


def fused_run(module: TemporalInterlace, x: torch.Tensor, grad_y: torch.Tensor,
              grad: str) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """The fused op's forward and backward: (y, [grad_x, *parameter gradients], offsets [N, 2])."""
    leaf = x.clone().requires_grad_()
    params = net_params(module)
    y, offsets, _ = tin_block.temporal_interlace_block(leaf, params, SEGMENTS, SHIFT_DIV, grad)
    grads = torch.autograd.grad(y, [leaf, *params], grad_y)
    return y.detach(), list(grads), offsets


def composed_run(module: TemporalInterlace, x: torch.Tensor, grad_y: torch.Tensor,
                 grad: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The same in float64 through the module's composed steps: (y, [grad_x, *parameter gradients]).

    The module runs its steps separately for input that is not NCHW-contiguous, so the float64
    input goes in channels-last (same values, other strides)."""
    reference = copy.deepcopy(module).to(torch.float64)
    reference.grad = grad
    leaf = x.to(torch.float64).contiguous(memory_format=torch.channels_last).requires_grad_()
    params = list(net_params(reference))
    y = reference(leaf)
    grads = torch.autograd.grad(y, [leaf, *params], grad_y.to(torch.float64))
    return y.detach(), list(grads)


def check_tin_block(grad_modes: tuple[str, ...] = GRAD_MODES_QUICK) -> list[Check]:
    """Two checks, "TIN module forward [fused]" (y) and "TIN module backward [fused]" (grad_x
    and the gradients of OffsetNet's and WeightNet's parameters), float32 on the CPU, at the
    block inputs of TIN-R50's four stages, for each data-gradient mode in ``grad_modes``."""
    values_tol, params_tol = TOLERANCE
    param_names = tin_block.NetParams._fields
    forward: list[RelError] = []
    backward: list[RelError] = []
    offsets_seen: list[torch.Tensor] = []
    for stage, shape in BLOCK_SHAPES.items():
        module = spread_module(shape[1])
        x, grad_y = block_inputs(shape)
        for grad in grad_modes:
            y, grads, offsets = fused_run(module, x, grad_y, grad)
            want_y, want_grads = composed_run(module, x, grad_y, grad)
            offsets_seen.append(offsets.detach().flatten())
            if grad == grad_modes[0]:  # the forward does not depend on the gradient mode
                forward.append(RelError(f"{stage} y", relative_error(y, want_y), values_tol))
            backward.append(RelError(f"{stage} [{grad}] grad_x", relative_error(grads[0], want_grads[0]), values_tol))
            backward += [RelError(f"{stage} [{grad}] grad {name}", relative_error(got, want), params_tol)
                         for name, got, want in zip(param_names, grads[1:], want_grads[1:])]
    spread = torch.cat(offsets_seen)
    scope = (f"{len(BLOCK_SHAPES)} stage inputs [8, C, H, W], grad {'/'.join(grad_modes)}, offsets "
             f"{spread.min().item():+.2f}..{spread.max().item():+.2f}")
    return [verdict(name, "cpu", "float32", errors, what, scope, "the float64 composed steps")
            for name, errors, what in (("TIN module forward [fused]", forward, "y"),
                                       ("TIN module backward [fused]", backward, "grad_x/nets' params"))]
