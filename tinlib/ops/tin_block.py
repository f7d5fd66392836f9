"""TIN's whole temporal module (pooling, offset/weight nets, interlace, pass-through) as one op.

`tinlib.models.TemporalInterlace` computes, for the block input ``x: [N*T, C, H, W]`` with fold
``F = C // shift_div`` (four channel quarters, groups g = 0..3):

    pooled  = mean over H, W of x[:, :F]                      [N, T, F]
    z       = conv1d(pooled, cat(Wo, Ww), cat(bo, bw), k=3, pad=1)   [N, T, 3] (one offset + two weight channels)
    offsets = 4 (sigmoid(fc2(relu(fc1(z[..., 0])))) - 0.5)   [N, 2]
    weights = 2 sigmoid(z[..., 1:])                           [N, T, 2]
    y       = cat(interlace(x[:, :F], [+o0, +o1, -o0, -o1], [w0, w1, w0, w1]), x[:, F:])

Written as separate autograd steps this moves the whole tensor several times (the concatenation,
zero-filled slice gradients, a second full-size gradient from the pooling that autograd then adds).
Here the forward is one pass: x, viewed as a table of rows of D = (F // 4) * H * W contiguous
values (Q = C * H * W / D rows per frame, the first four of them the fold quarters), goes through
one `embedding_bag`: fold rows are the two-tap temporal filter of the interlace, every other row a
bag of one entry with weight 1 (an exact copy). The backward writes grad_x in one pass the same
way, computes the offset/weight gradients as per-row dot products, runs the nets' backward by hand
(a few [N, T]-sized matmuls) and adds the pooling's gradient to the fold channels in place.

It needs x contiguous (NCHW), float32 or float64, with the nets' parameters in the same dtype, and
C divisible by F // 4; `TemporalInterlace` checks this (`supports`) and otherwise runs the steps
separately. The function is the same; the results agree to rounding (tests/test_models.py).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .eager import _taps

GROUPS = 4  # channel quarters of the fold: offsets +o0, +o1, -o0, -o1 and weights w0, w1, w0, w1
_HAS_FUSED_DOTS = hasattr(torch.ops.aten, "_embedding_bag_per_sample_weights_backward")


class NetParams(NamedTuple):
    """Parameters of OffsetNet (conv, fc1, fc2) and WeightNet (conv), by their layer shapes."""

    offset_conv_weight: torch.Tensor  # [1, F, 3]
    offset_conv_bias: torch.Tensor  # [1]
    fc1_weight: torch.Tensor  # [T, T]
    fc1_bias: torch.Tensor  # [T]
    fc2_weight: torch.Tensor  # [2, T]
    fc2_bias: torch.Tensor  # [2]
    weight_conv_weight: torch.Tensor  # [2, F, 3]
    weight_conv_bias: torch.Tensor  # [2]


def supports(x: torch.Tensor, params: NetParams, num_segments: int, shift_div: int) -> bool:
    """Whether `temporal_interlace_block` takes x: [N*T, C, H, W] (else compose the steps)."""
    if x.dim() != 4 or x.dtype not in (torch.float32, torch.float64) or not x.is_contiguous():
        return False
    if any(p.dtype != x.dtype or p.device != x.device for p in params):
        return False
    nt, c, h, w = x.shape
    fold = c // shift_div
    return (nt > 0 and h * w > 0 and nt % num_segments == 0 and fold > 0 and fold % GROUPS == 0
            and c % (fold // GROUPS) == 0)


# ---------------------------------------------------------------------------------------------
# the nets, forward and backward, on [N, T, F]-sized tensors (few ops: at the late stages the
# data passes are short and the count of small ops is what costs)

def _conv_inputs(pooled: torch.Tensor) -> torch.Tensor:
    """The three-frame windows of pooled [N, T, F] (zero padded) as [N*T, F*3], column f*3 + j =
    pooled[n, t + j - 1, f]: a conv1d(k=3, padding 1) over T is then one matmul."""
    n, steps, fold = pooled.shape
    return F.pad(pooled, (0, 0, 1, 1)).unfold(1, 3, 1).reshape(n * steps, fold * 3)


def _conv_weight(params: NetParams) -> torch.Tensor:
    """Both nets' conv weights as [3, F*3]: output 0 = OffsetNet's, 1-2 = WeightNet's."""
    w = torch.cat([params.offset_conv_weight, params.weight_conv_weight])
    return w.view(3, -1)


def _nets(pooled: torch.Tensor, params: NetParams):
    """pooled [N, T, F] -> (offsets [N, 2], weights [N, T, 2], aux [N, T, 4]: the conv outputs z
    (offset channel, two weight channels) and fc1's output before the relu, for the backward)."""
    n, steps, _ = pooled.shape
    bias = torch.cat([params.offset_conv_bias, params.weight_conv_bias])
    z = torch.addmm(bias, _conv_inputs(pooled), _conv_weight(params).t())  # [N*T, 3]
    pre = torch.addmm(params.fc1_bias, z[:, 0].view(n, steps), params.fc1_weight.t())
    offsets = torch.sigmoid(torch.addmm(params.fc2_bias, pre.relu(), params.fc2_weight.t())).sub_(0.5).mul_(4.0)
    weights = torch.sigmoid(z[:, 1:]).mul_(2.0).view(n, steps, 2)
    return offsets, weights, torch.cat([z.view(n, steps, 3), pre.unsqueeze(-1)], -1)


def _nets_backward(pooled: torch.Tensor, aux: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor,
                   params: NetParams, grad_offsets: torch.Tensor, grad_weights: torch.Tensor):
    """Gradients of `_nets` for grad_offsets [N, 2] and grad_weights [N, T, 2]: (grad_pooled
    [N, T, F], NetParams of parameter gradients). aux, offsets, weights: `_nets`' outputs."""
    n, steps, fold = pooled.shape
    z_offset, pre = aux[..., 0], aux[..., 3]
    offset_sigmoid, weight_sigmoid = offsets * 0.25 + 0.5, weights * 0.5  # the sigmoids' outputs
    g_fc2 = grad_offsets * (4.0 * offset_sigmoid * (1 - offset_sigmoid))  # [N, 2]
    g_pre = (g_fc2 @ params.fc2_weight).mul_(pre > 0)  # [N, T]
    g_z = torch.cat([(g_pre @ params.fc1_weight).unsqueeze(-1),
                     grad_weights * (2.0 * weight_sigmoid * (1 - weight_sigmoid))], -1).view(n * steps, 3)
    windows = _conv_inputs(pooled)
    g_windows = (g_z @ _conv_weight(params)).view(n, steps, fold, 3)  # [n, t, f, j] -> pooled[n, t + j - 1, f]
    g_pooled = g_windows[..., 1].clone()
    g_pooled[:, :-1] += g_windows[:, 1:, :, 0]
    g_pooled[:, 1:] += g_windows[:, :-1, :, 2]
    grads = NetParams((g_z[:, :1].t() @ windows).view(params.offset_conv_weight.shape), g_z[:, 0].sum(0, True),
                      g_pre.t() @ z_offset, g_pre.sum(0), g_fc2.t() @ pre.relu(), g_fc2.sum(0),
                      (g_z[:, 1:].t() @ windows).view(params.weight_conv_weight.shape), g_z[:, 1:].sum(0))
    return g_pooled, grads


# ---------------------------------------------------------------------------------------------
# the data passes

@functools.lru_cache(maxsize=64)
def _layout(frames: int, rows: int, dtype: torch.dtype, device: torch.device):
    """embedding_bag bookkeeping for `rows` table rows per frame, the first GROUPS of them with
    two entries (the filter taps), the others one (a copy). Returns (bag offsets [frames * rows],
    copy entries [frames, rows - GROUPS] (their table rows), their weights (ones, dtype), and for
    the dot products the bag (table row) of each fold entry [frames * GROUPS * 2] and the offsets
    of pairs [frames * GROUPS])."""
    per_frame = rows + GROUPS
    starts = torch.cat([torch.arange(0, 2 * GROUPS, 2), torch.arange(2 * GROUPS, per_frame)])
    frame = torch.arange(frames).view(frames, 1)
    bag_offsets = (frame * per_frame + starts).view(-1)
    copies = frame * rows + torch.arange(GROUPS, rows)
    fold_rows = (frame * rows + torch.arange(GROUPS)).view(-1)
    pair_offsets = torch.arange(0, 2 * fold_rows.numel(), 2)
    return (bag_offsets.to(device), copies.to(device), torch.ones(copies.shape, dtype=dtype, device=device),
            fold_rows.repeat_interleave(2).to(device), pair_offsets.to(device))


def _filter_with_copies(table: torch.Tensor, frames: int, rows: int, tap_rows: torch.Tensor,
                        tap_coefs: torch.Tensor) -> torch.Tensor:
    """out row (frame, q) = sum_j tap_coefs[., j] table[tap_rows[., j]] for q < GROUPS, else the
    same row of the table. table: [frames * rows, D]; tap_rows/tap_coefs: [frames * GROUPS, 2]."""
    bag_offsets, copies, ones, _, _ = _layout(frames, rows, table.dtype, table.device)
    indices = torch.cat([tap_rows.view(frames, 2 * GROUPS), copies], 1).view(-1)
    coefs = torch.cat([tap_coefs.view(frames, 2 * GROUPS), ones], 1).view(-1)
    return F.embedding_bag(indices, table, bag_offsets, mode="sum", per_sample_weights=coefs)


def _tap_dots(grad_table: torch.Tensor, table: torch.Tensor, frames: int, rows: int,
              tap_rows: torch.Tensor) -> torch.Tensor:
    """[frames * GROUPS, 2]: entry (fold row r, j) = <grad_table[r], table[tap_rows[r, j]]>."""
    _, _, _, entry_rows, pair_offsets = _layout(frames, rows, table.dtype, table.device)
    if _HAS_FUSED_DOTS:
        try:
            dots = torch.ops.aten._embedding_bag_per_sample_weights_backward(
                grad_table, table, tap_rows.view(-1), pair_offsets, entry_rows, 0, -1)
            return dots.view(tap_rows.shape)
        except NotImplementedError:  # no kernel for this device
            pass
    sources = table.index_select(0, tap_rows.view(-1)).view(*tap_rows.shape, table.shape[1])
    grads = grad_table.index_select(0, entry_rows[::2])
    return torch.bmm(sources, grads.unsqueeze(-1)).squeeze(-1)


def _quarters(offsets: torch.Tensor, weights: torch.Tensor, steps: int):
    """The four quarters' k = floor(offset) [N, 4] int64, f = offset - k [N, 4] and weights
    [N, T, 4] from the nets' offsets [N, 2] and weights [N, T, 2]. Offsets are clamped to
    [-T-1, T+1] first, as in tinlib.ops: beyond that only zeros are read either way."""
    quarter_offsets = torch.cat([offsets, -offsets], 1).clamp_(-(steps + 1), steps + 1)
    k = quarter_offsets.floor()
    return k.long(), quarter_offsets.sub_(k), weights.repeat(1, 1, 2)


def _shape(x: torch.Tensor, num_segments: int, shift_div: int):
    nt, c, h, w = x.shape
    fold = c // shift_div
    rows = c // (fold // GROUPS)
    return nt, nt // num_segments, c, h * w, fold, rows


def _forward(x: torch.Tensor, params: NetParams, num_segments: int, shift_div: int):
    """-> (y, offsets, weights, and for the backward: pooled [N, T, F], aux [N, T, 4], the forward
    taps' table rows [N*T*4, 2] int64 and validity [N, T, 4, 2] bool)."""
    nt, n, c, hw, fold, rows = _shape(x, num_segments, shift_div)
    pooled = x[:, :fold].mean((2, 3)).view(n, num_segments, fold)
    offsets, weights, aux = _nets(pooled, params)
    k, f, w = _quarters(offsets, weights, num_segments)
    tap_rows, tap_coefs, valid = _taps(k, f, w, num_segments * rows, rows, -1, weight_at_source=False)
    # detached: a table that requires grad sends embedding_bag down its much slower training path
    out = _filter_with_copies(x.detach().view(nt * rows, -1), nt, rows, tap_rows, tap_coefs)
    return out.view(x.shape), offsets, weights, pooled, aux, tap_rows, valid


def _backward(grad_y: torch.Tensor, x: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor,
              pooled: torch.Tensor, aux: torch.Tensor, tap_rows: torch.Tensor, valid: torch.Tensor,
              params: NetParams, num_segments: int, shift_div: int, grad: str, need_x: bool):
    nt, n, c, hw, fold, rows = _shape(x, num_segments, shift_div)
    grad_table = grad_y.detach().contiguous().view(nt * rows, -1)
    k, f, w = _quarters(offsets, weights, num_segments)
    # offset/weight gradients of the four quarters (see _common.param_grads), folded onto the nets' two
    dots = torch.where(valid, _tap_dots(grad_table, x.detach().view(nt * rows, -1), nt, rows, tap_rows)
                       .view(valid.shape), 0)
    dot0, dot1 = dots.unbind(-1)
    step = dot1 - dot0
    g_quarter_weights = torch.addcmul(dot0, f.unsqueeze(1), step)  # (1 - f) dot0 + f dot1
    g_quarter_offsets = (w * step).sum(1)
    g_offsets = g_quarter_offsets[:, :2] - g_quarter_offsets[:, 2:]  # quarters 2, 3 have offset -o
    g_weights = g_quarter_weights[..., :2] + g_quarter_weights[..., 2:]
    g_pooled, g_params = _nets_backward(pooled, aux, offsets, weights, params, g_offsets, g_weights)
    if not need_x:
        return None, g_params
    # grad_x: the adjoint (or mmcv's) filter on the fold rows, a copy elsewhere, then the pooling's share
    direction = 1 if grad == "adjoint" else -1
    tap_rows, tap_coefs, _ = _taps(k, f, w, num_segments * rows, rows, direction, weight_at_source=True)
    grad_x = _filter_with_copies(grad_table, nt, rows, tap_rows, tap_coefs).view(nt, c, hw)
    grad_x[:, :fold] += g_pooled.view(nt, fold, 1).div_(hw)
    return grad_x.view(x.shape), g_params


# ---------------------------------------------------------------------------------------------
# torch.library ops (traced by torch.compile without graph breaks, like tinlib::interlace)

@torch.library.custom_op("tinlib::tin_block", mutates_args=())
def _block_op(x: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor,
              p4: torch.Tensor, p5: torch.Tensor, p6: torch.Tensor, p7: torch.Tensor, num_segments: int,
              shift_div: int, grad: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                                  torch.Tensor, torch.Tensor, torch.Tensor]:
    return _forward(x, NetParams(p0, p1, p2, p3, p4, p5, p6, p7), num_segments, shift_div)


@_block_op.register_fake
def _(x, p0, p1, p2, p3, p4, p5, p6, p7, num_segments, shift_div, grad):
    n, fold = x.shape[0] // num_segments, x.shape[1] // shift_div
    return (x.new_empty(x.shape), x.new_empty(n, 2), x.new_empty(n, num_segments, 2),
            x.new_empty(n, num_segments, fold), x.new_empty(n, num_segments, 4),
            x.new_empty(n * num_segments * GROUPS, 2, dtype=torch.int64),
            x.new_empty(n, num_segments, GROUPS, 2, dtype=torch.bool))


@torch.library.custom_op("tinlib::tin_block_backward", mutates_args=())
def _block_backward_op(grad_y: torch.Tensor, x: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor,
                       pooled: torch.Tensor, aux: torch.Tensor, tap_rows: torch.Tensor, valid: torch.Tensor,
                       p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor, p4: torch.Tensor,
                       p5: torch.Tensor, p6: torch.Tensor, p7: torch.Tensor, num_segments: int, shift_div: int,
                       grad: str, need_x: bool) -> list[torch.Tensor]:
    grad_x, g_params = _backward(grad_y, x, offsets, weights, pooled, aux, tap_rows, valid,
                                 NetParams(p0, p1, p2, p3, p4, p5, p6, p7), num_segments, shift_div, grad, need_x)
    # a custom op cannot return None: an unneeded grad_x is an empty tensor
    return [grad_x if grad_x is not None else x.new_empty(0), *g_params]


@_block_backward_op.register_fake
def _(grad_y, x, offsets, weights, pooled, aux, tap_rows, valid, p0, p1, p2, p3, p4, p5, p6, p7,
      num_segments, shift_div, grad, need_x):
    return [x.new_empty(x.shape) if need_x else x.new_empty(0),
            *(p.new_empty(p.shape) for p in (p0, p1, p2, p3, p4, p5, p6, p7))]


def _setup_context(ctx, inputs, output):
    x, *params = inputs[:9]
    ctx.num_segments, ctx.shift_div, ctx.grad = inputs[9:]
    # offsets and weights are returned for inspection only (TemporalInterlace.record)
    ctx.mark_non_differentiable(*output[1:])
    ctx.save_for_backward(x, *output[1:], *params)


def _backward_formula(ctx, grad_y, *_):
    x, offsets, weights, pooled, aux, tap_rows, valid, *params = ctx.saved_tensors
    grads = _block_backward_op(grad_y, x, offsets, weights, pooled, aux, tap_rows, valid, *params,
                               ctx.num_segments, ctx.shift_div, ctx.grad, ctx.needs_input_grad[0])
    grad_x = grads[0] if ctx.needs_input_grad[0] else None
    return (grad_x, *(g if need else None for g, need in zip(grads[1:], ctx.needs_input_grad[1:9])),
            None, None, None)


_block_op.register_autograd(_backward_formula, setup_context=_setup_context)


class _BlockFunction(torch.autograd.Function):
    """The same op for eager mode: an autograd.Function dispatches with less Python around each
    call than a torch.library op, which shows at the late stages' small tensors."""

    @staticmethod
    def forward(ctx, x, *args):  # type: ignore[override]
        *params, num_segments, shift_div, grad = args
        outputs = _forward(x, NetParams(*params), num_segments, shift_div)
        ctx.num_segments, ctx.shift_div, ctx.grad = num_segments, shift_div, grad
        ctx.mark_non_differentiable(*outputs[1:])
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, *outputs[1:], *params)
        return outputs

    @staticmethod
    def backward(ctx, grad_y, *_):  # type: ignore[override]
        x, offsets, weights, pooled, aux, tap_rows, valid, *params = ctx.saved_tensors
        if grad_y is None:
            return (None,) * 12
        grad_x, g_params = _backward(grad_y, x, offsets, weights, pooled, aux, tap_rows, valid, NetParams(*params),
                                     ctx.num_segments, ctx.shift_div, ctx.grad, ctx.needs_input_grad[0])
        return (grad_x, *g_params, None, None, None)


def temporal_interlace_block(x: torch.Tensor, params: NetParams, num_segments: int, shift_div: int,
                             grad: str = "adjoint"):
    """TIN's temporal module on a block input (see the module docstring for the function).

    Args:
        x: [N*T, C, H, W] float32/float64, contiguous; T = num_segments consecutive frames per video.
        params: the nets' parameters, x's dtype and device.
        num_segments: T. shift_div: the fold is the first C // shift_div channels.
        grad: data gradient of the interlace, "adjoint" or "mmcv" (see tinlib.ops.interlace).

    Returns:
        (y [N*T, C, H, W], offsets [N, 2], weights [N, T, 2]); y is differentiable in x and the
        parameters, offsets and weights (what the nets predicted) are not. Check `supports` first.
    """
    op = _block_op if torch.compiler.is_compiling() else _BlockFunction.apply
    y, offsets, weights = op(x, *params, num_segments, shift_div, grad)[:3]
    return y, offsets, weights
