"""TIN's whole temporal module (pooling, offset/weight nets, interlace, pass-through) as one op.

For x: [N*T, C, H, W] and the fold F = C // shift_div (quarters q = 0..3), `TemporalInterlace` is
    pooled  = mean over H, W of x[:, :F]                                   [N, T, F]
    offsets = 4 (sigmoid(fc2(relu(fc1(conv1d_o(pooled))))) - 1/2)          [N, 2]   (OffsetNet)
    weights = 2 sigmoid(conv1d_w(pooled))                                  [N, T, 2] (WeightNet)
    y       = cat(interlace(x[:, :F], [o0, o1, -o0, -o1], [w0, w1, w0, w1]), x[:, F:])
(conv1d over T, kernel 3, zero padding 1). As separate autograd steps this moves the whole tensor
several times; here one `embedding_bag` over rows of (F // 4) * H * W values writes y (a fold row is
the two-tap filter, any other row a copy), and the backward writes grad_x the same way, with the
nets' backward by hand and the pooling's gradient added in place. Device-generic ops, run on the CPU only."""
from __future__ import annotations

import functools
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ._common import pair_dots

GROUPS = 4  # channel quarters of the fold: offsets +o0, +o1, -o0, -o1 and weights w0, w1, w0, w1


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


class _Saved(NamedTuple):
    """What the forward keeps for the backward (besides x, the parameters, offsets and weights)."""

    windows: torch.Tensor  # [N*T, F*3]: the convs' input, column f*3 + j = pooled[n, t + j - 1, f] (or 0)
    z_offset: torch.Tensor  # [N, T]: OffsetNet's conv output
    hidden: torch.Tensor  # [N, T]: relu(fc1)
    frac: torch.Tensor  # [N, 1, 4, 2]: (1 - f, f), f = offset - floor(offset) of each quarter
    weights4: torch.Tensor  # [N, T, 4]: each quarter's weights
    tap_rows: torch.Tensor  # [N*T, 8] int64: table rows the forward taps read (see _taps)
    valid: torch.Tensor  # [N, T, 4, 2] bool: whether that frame is inside [0, T)
    grad_rows: torch.Tensor  # [N*T, 8] int64: the data gradient's taps ...
    grad_coefs: torch.Tensor  # [N*T, 8]: ... and their coefficients


class _Constants(NamedTuple):
    both_frames: torch.Tensor  # [2, 1, T, 1, 2] int64: t - j, t + j (forward and adjoint taps, see _taps) ...
    both_signs: torch.Tensor  # [2, 1, 1, 1, 1] int64: ... read frames t - j - k and t + j + k
    forward_frames: torch.Tensor  # [1, T, 1, 2] int64: t - j
    base: torch.Tensor  # [N, 1, 4, 1] int64: table row of (n, frame 0, quarter q)
    frac_base: torch.Tensor  # [2]: (1, 0) ...
    frac_slope: torch.Tensor  # [2]: ... + f (-1, 1) = (1 - f, f)
    pair_sign: torch.Tensor  # [1, 2, 1]: quarters 0-1 have offset +o, quarters 2-3 -o
    overlap: torch.Tensor  # [T, T*3]: 1 at (s, t*3 + j) if t + j - 1 = s (the conv windows' entries of frame s)
    minus_two: torch.Tensor  # [1]: -2.0
    four: torch.Tensor  # [1]: 4.0
    bag_offsets: torch.Tensor  # [N*T*rows]: start of each bag (two entries for fold rows, one elsewhere)
    copies: torch.Tensor  # [N*T, rows - 4] int64: the copied rows
    ones: torch.Tensor  # [N*T, rows - 4]: their weights
    entry_rows: torch.Tensor  # [N*T*4*2] int64: the fold row each tap belongs to
    pair_offsets: torch.Tensor  # [N*T*4]: start of each pair of taps


@functools.lru_cache(maxsize=64)
def _constants(n: int, steps: int, rows: int, dtype: torch.dtype, device: torch.device) -> _Constants:
    """Index bookkeeping for N videos of T frames, `rows` table rows per frame of which the first
    GROUPS are the fold quarters; built once per shape."""
    frames = n * steps
    t, j = torch.arange(steps).view(1, steps, 1, 1), torch.arange(2)
    frame = torch.arange(frames).view(frames, 1)
    bag_starts = torch.cat([torch.arange(0, 2 * GROUPS, 2), torch.arange(2 * GROUPS, rows + GROUPS)])
    fold_rows = (frame * rows + torch.arange(GROUPS)).view(-1)
    copies = frame * rows + torch.arange(GROUPS, rows)

    def ints(values: torch.Tensor) -> torch.Tensor:
        return values.to(device)

    def floats(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype, device=device)

    return _Constants(
        both_frames=ints(torch.stack([t - j, t + j])), both_signs=ints(torch.tensor([-1, 1]).view(2, 1, 1, 1, 1)),
        forward_frames=ints(t - j),
        base=ints((torch.arange(n) * steps * rows).view(n, 1, 1, 1) + torch.arange(GROUPS).view(1, 1, GROUPS, 1)),
        frac_base=floats([1.0, 0.0]), frac_slope=floats([-1.0, 1.0]), pair_sign=floats([1.0, -1.0]).view(1, 2, 1),
        overlap=(t.view(1, steps, 1) + torch.arange(3) - 1 == t.view(steps, 1, 1)).view(steps, -1).to(device, dtype),
        minus_two=floats([-2.0]), four=floats([4.0]),
        bag_offsets=ints((frame * (rows + GROUPS) + bag_starts).view(-1)), copies=ints(copies),
        ones=torch.ones(copies.shape, dtype=dtype, device=device), entry_rows=ints(fold_rows.repeat_interleave(2)),
        pair_offsets=ints(torch.arange(0, 2 * fold_rows.numel(), 2)))


# the nets, forward and backward, on [N, T, F]-sized tensors. At the late stages the data passes
# are short and the number of small ops is what costs, hence the terse formulation.

def _nets(pooled: torch.Tensor, params: NetParams, consts: _Constants):
    """pooled [N, T, F] -> (offsets [N, 2], weights [N, T, 2], windows, z_offset, hidden: see _Saved)."""
    n, steps, fold = pooled.shape
    # conv1d(k=3, padding 1) over T as one matmul over the zero-padded three-frame windows
    windows = F.pad(pooled, (0, 0, 1, 1)).unfold(1, 3, 1).reshape(n * steps, fold * 3)
    z_offset = F.linear(windows, params.offset_conv_weight.view(1, -1), params.offset_conv_bias).view(n, steps)
    z_weight = F.linear(windows, params.weight_conv_weight.view(2, -1), params.weight_conv_bias)
    hidden = F.linear(z_offset, params.fc1_weight, params.fc1_bias).relu()
    # 4 (s - 1/2) as -2 + 4 s: the same value (scaling by 4 is exact), one op
    offsets = torch.addcmul(consts.minus_two, torch.sigmoid(F.linear(hidden, params.fc2_weight, params.fc2_bias)),
                            consts.four)
    weights = (torch.sigmoid(z_weight) * 2.0).view(n, steps, 2)
    return offsets, weights, windows, z_offset, hidden


def _nets_backward(saved: _Saved, offsets: torch.Tensor, weights: torch.Tensor, params: NetParams,
                   consts: _Constants, grad_offsets: torch.Tensor, grad_weights: torch.Tensor):
    """Gradients of `_nets` for grad_offsets [N, 2] and grad_weights [N, T, 2]: (grad_pooled
    [N, T, F], NetParams of parameter gradients)."""
    n, steps = weights.shape[:2]
    offset_conv, weight_conv = params.offset_conv_weight.view(1, -1), params.weight_conv_weight.view(2, -1)
    hidden = saved.hidden
    # d offsets / d fc2 = 4 s (1 - s) = 1 - offsets^2 / 4; d weights / d z = 2 s (1 - s) = w - w^2 / 2
    g_fc2 = torch.addcmul(grad_offsets, grad_offsets * offsets, offsets, value=-0.25)  # [N, 2]
    g_fc1 = (g_fc2 @ params.fc2_weight) * (hidden > 0)  # [N, T]
    g_z_offset = (g_fc1 @ params.fc1_weight).view(n * steps, 1)
    g_z_weight = (torch.addcmul(weights, weights, weights, value=-0.5) * grad_weights).view(n * steps, 2)
    g_windows = torch.addmm(g_z_weight @ weight_conv, g_z_offset, offset_conv)  # [N*T, F*3], column f*3 + j
    # window entry (t, f, j) holds pooled[t + j - 1, f]: each frame's gradient sums its (up to) three entries
    g_pooled = consts.overlap @ g_windows.view(n, steps, -1, 3).transpose(2, 3).reshape(n, steps * 3, -1)
    grads = NetParams((g_z_offset.t() @ saved.windows).view(params.offset_conv_weight.shape), g_z_offset.sum(0),
                      g_fc1.t() @ saved.z_offset, g_fc1.sum(0), g_fc2.t() @ hidden, g_fc2.sum(0),
                      (g_z_weight.t() @ saved.windows).view(params.weight_conv_weight.shape), g_z_weight.sum(0))
    return g_pooled, grads


# the data passes

def _taps(k: torch.Tensor, frac: torch.Tensor, weights4: torch.Tensor, consts: _Constants, rows: int,
          grad: str | None):
    """Table rows and coefficients of the two taps of every fold output row (n, t, q), for the
    forward and, unless grad is None, for the data gradient.

    k: [N, 1, 4, 1] int64 floor of the quarters' offsets; frac: [N, 1, 4, 2] = (1 - f, f);
    weights4: [N, T, 4]. Forward tap j reads frame s = t - k - j with coefficient (1 - f, f)[j] w[t];
    the adjoint's s = t + k + j, mmcv's backward s = t - k - j, both with (1 - f, f)[j] w[s]; the
    coefficient is 0 where s is outside [0, T) (s is clamped into range for the row). Rows and
    coefficients are [N*T, 8], entry q*2 + j of a frame being tap j of quarter q. Returns
    (rows, coefficients, valid [N, T, 4, 2] of the forward; rows, coefficients of the gradient
    or None, None)."""
    n, steps = weights4.shape[:2]
    both = grad == "adjoint"  # forward and adjoint taps differ: compute both in one go
    source = (torch.addcmul(consts.both_frames, k, consts.both_signs) if both
              else torch.addcmul(consts.forward_frames, k, consts.both_signs[0]))
    inside = source.clamp(0, steps - 1)
    valid = inside == source
    tap_rows = torch.add(consts.base, inside, alpha=rows).view(-1, n * steps, 2 * GROUPS)
    frac_valid = frac * valid
    w = weights4.view(n, steps, GROUPS, 1)
    if grad is None:
        return tap_rows[0], (w * frac_valid).view(n * steps, -1), valid, None, None
    grad_inside, grad_frac_valid = (inside[1], frac_valid[1]) if both else (inside, frac_valid)
    grad_coefs = (w.expand(n, steps, GROUPS, 2).gather(1, grad_inside) * grad_frac_valid).view(n * steps, -1)
    forward_frac_valid = frac_valid[0] if both else frac_valid
    return (tap_rows[0], (w * forward_frac_valid).view(n * steps, -1), valid[0] if both else valid, tap_rows[-1],
            grad_coefs)


def _filter_with_copies(table: torch.Tensor, consts: _Constants, tap_rows: torch.Tensor,
                        tap_coefs: torch.Tensor) -> torch.Tensor:
    """out row (frame, q) = sum_j tap_coefs[frame, q*2 + j] table[tap_rows[frame, q*2 + j]] for
    q < 4, else the same row of the table. table: [N*T*rows, D]; tap_rows/tap_coefs: [N*T, 8]
    -> [N*T*rows, D]."""
    indices = torch.cat([tap_rows, consts.copies], 1).view(-1)
    coefs = torch.cat([tap_coefs, consts.ones], 1).view(-1)
    # torch.embedding_bag is F.embedding_bag without its Python-side argument checks (ours are fine)
    return torch.embedding_bag(table, indices, consts.bag_offsets, False, 0, False, coefs)[0]


def _forward(x: torch.Tensor, params: NetParams, num_segments: int, shift_div: int, grad: str | None):
    """-> (y [N*T, C, H, W], offsets [N, 2], weights [N, T, 2], _Saved, or None when grad is None
    (no backward to come))."""
    nt, c, h, w = x.shape
    n, fold = nt // num_segments, c // shift_div
    rows = c // (fold // GROUPS)  # table rows per frame
    consts = _constants(n, num_segments, rows, x.dtype, x.device)
    pooled = x[:, :fold].mean((2, 3)).view(n, num_segments, fold)
    offsets, weights, windows, z_offset, hidden = _nets(pooled, params, consts)
    # the quarters' offsets +o0 +o1 -o0 -o1 lie in (-2, 2) (4 (sigmoid - 1/2)): k is a small integer
    quarter_offsets = (offsets.view(n, 1, 2) * consts.pair_sign).view(n, 1, GROUPS, 1)
    k = quarter_offsets.floor()
    frac = torch.addcmul(consts.frac_base, quarter_offsets - k, consts.frac_slope)
    weights4 = torch.cat([weights, weights], 2)
    tap_rows, tap_coefs, valid, grad_rows, grad_coefs = _taps(k.long(), frac, weights4, consts, rows, grad)
    # detached: a table that requires grad sends embedding_bag down its much slower training path
    out = _filter_with_copies(x.detach().view(nt * rows, -1), consts, tap_rows, tap_coefs)
    saved = None
    if grad is not None:
        saved = _Saved(windows, z_offset, hidden, frac, weights4, tap_rows, valid, grad_rows, grad_coefs)
    return out.view(x.shape), offsets, weights, saved


def _backward(grad_y: torch.Tensor, x: torch.Tensor, offsets: torch.Tensor, weights: torch.Tensor, saved: _Saved,
              params: NetParams, num_segments: int, shift_div: int, need_x: bool):
    """-> (grad_x [N*T, C, H, W] or None when not need_x, NetParams of the parameters' gradients)."""
    nt, c, h, w = x.shape
    n, fold = nt // num_segments, c // shift_div
    rows = c // (fold // GROUPS)
    consts = _constants(n, num_segments, rows, x.dtype, x.device)
    grad_table = grad_y.contiguous().view(nt * rows, -1)
    # grad_x: the adjoint (or mmcv's) filter on the fold rows, a copy elsewhere (first: the dot
    # products below then find grad_y's fold rows in cache), then the pooling's share
    grad_x = None
    if need_x:
        grad_x = _filter_with_copies(grad_table, consts, saved.grad_rows, saved.grad_coefs).view(nt, c, h * w)
    # d y[t] / d w[t] = (1 - f) X(t-k) + f X(t-k-1) and d y[t] / d offset = w[t] (X(t-k-1) - X(t-k))
    # (k held constant, as in tinlib.ops): per-row dot products with grad_y, zero outside [0, T)
    dots = pair_dots(grad_table, x.view(nt * rows, -1), saved.tap_rows.view(-1), consts.entry_rows, consts.pair_offsets)
    dots = dots.view(saved.valid.shape) * saved.valid
    g_weights = (dots * saved.frac).sum(-1).view(n, num_segments, 2, 2).sum(2)  # quarters q and q + 2 share w
    step = (dots * consts.frac_slope).sum(-1)  # X(t-k-1) - X(t-k) terms
    g_offsets = ((step * saved.weights4).sum(1).view(n, 2, 2) * consts.pair_sign).sum(1)
    g_pooled, g_params = _nets_backward(saved, offsets, weights, params, consts, g_offsets, g_weights)
    if grad_x is None:
        return None, g_params
    grad_x[:, :fold] += g_pooled.view(nt, fold, 1) * (1.0 / (h * w))
    return grad_x.view(x.shape), g_params


# As an autograd.Function in eager mode (the least Python around each call, which shows at the
# late stages), and as torch.library ops under torch.compile (traced without graph breaks, like
# tinlib::interlace); both run _forward and _backward.

class _BlockFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, *args):
        *params, num_segments, shift_div, grad = args  # grad: None when no backward will follow
        y, offsets, weights, saved = _forward(x, NetParams(*params), num_segments, shift_div, grad)
        ctx.num_segments, ctx.shift_div = num_segments, shift_div
        ctx.mark_non_differentiable(offsets, weights)
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, *params)
        ctx.saved, ctx.offsets, ctx.weights = saved, offsets, weights  # no grad_fn: no reference cycle
        return y, offsets, weights

    @staticmethod
    def backward(ctx, grad_y, *_):
        if grad_y is None:
            return (None,) * 12
        x, *params = ctx.saved_tensors
        grad_x, g_params = _backward(grad_y, x, ctx.offsets, ctx.weights, ctx.saved, NetParams(*params),
                                     ctx.num_segments, ctx.shift_div, ctx.needs_input_grad[0])
        return (grad_x, *g_params, None, None, None)


@torch.library.custom_op("tinlib::tin_block", mutates_args=())
def _block_op(x: torch.Tensor, p0: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor, p3: torch.Tensor,
              p4: torch.Tensor, p5: torch.Tensor, p6: torch.Tensor, p7: torch.Tensor, num_segments: int,
              shift_div: int, grad: str) -> list[torch.Tensor]:
    y, offsets, weights, saved = _forward(x, NetParams(p0, p1, p2, p3, p4, p5, p6, p7), num_segments, shift_div,
                                          grad)
    assert saved is not None
    # outputs may not alias each other, and are contiguous like the fake ones below
    return [y, offsets, weights, *(t.clone(memory_format=torch.contiguous_format) for t in saved)]


@_block_op.register_fake
def _(x, p0, p1, p2, p3, p4, p5, p6, p7, num_segments, shift_div, grad):
    n, fold = x.shape[0] // num_segments, x.shape[1] // shift_div
    frames, int64 = n * num_segments, torch.int64
    return [x.new_empty(x.shape), x.new_empty(n, 2), x.new_empty(n, num_segments, 2),
            # _Saved
            x.new_empty(frames, fold * 3), x.new_empty(n, num_segments), x.new_empty(n, num_segments),
            x.new_empty(n, 1, GROUPS, 2), x.new_empty(n, num_segments, GROUPS),
            x.new_empty(frames, 2 * GROUPS, dtype=int64), x.new_empty(n, num_segments, GROUPS, 2, dtype=torch.bool),
            x.new_empty(frames, 2 * GROUPS, dtype=int64), x.new_empty(frames, 2 * GROUPS)]


@torch.library.custom_op("tinlib::tin_block_backward", mutates_args=())
def _block_backward_op(grad_y: torch.Tensor, x: torch.Tensor, params: list[torch.Tensor],
                       state: list[torch.Tensor], num_segments: int, shift_div: int,
                       need_x: bool) -> list[torch.Tensor]:
    offsets, weights, *saved = state
    grad_x, g_params = _backward(grad_y, x, offsets, weights, _Saved(*saved), NetParams(*params), num_segments,
                                 shift_div, need_x)
    # a custom op cannot return None (an unneeded grad_x is an empty tensor), nor aliases
    return [grad_x if grad_x is not None else x.new_empty(0), *(g.clone() for g in g_params)]


@_block_backward_op.register_fake
def _(grad_y, x, params, state, num_segments, shift_div, need_x):
    return [x.new_empty(x.shape) if need_x else x.new_empty(0), *(p.new_empty(p.shape) for p in params)]


def _setup_context(ctx, inputs, output):
    x, *params = inputs[:9]
    ctx.num_segments, ctx.shift_div = inputs[9:11]
    ctx.mark_non_differentiable(*output[1:])
    ctx.save_for_backward(x, *params, *output[1:])


def _backward_formula(ctx, grads):
    x, *rest = ctx.saved_tensors
    grads = _block_backward_op(grads[0], x, rest[:8], rest[8:], ctx.num_segments, ctx.shift_div,
                               ctx.needs_input_grad[0])
    return (grads[0] if ctx.needs_input_grad[0] else None,
            *(g if need else None for g, need in zip(grads[1:], ctx.needs_input_grad[1:9])), None, None, None)


_block_op.register_autograd(_backward_formula, setup_context=_setup_context)


def temporal_interlace_block(x: torch.Tensor, params: NetParams, num_segments: int, shift_div: int,
                             grad: str = "adjoint"):
    """TIN's temporal module (the module docstring's function) on x: [N*T, C, H, W] float32/float64,
    contiguous, T = num_segments consecutive frames per video, the fold the first C // shift_div channels;
    params in x's dtype and device; grad as for tinlib.ops.interlace. -> (y [N*T, C, H, W], differentiable
    in x and params; offsets [N, 2] and weights [N, T, 2], what the nets predicted, not differentiable).
    """
    if torch.compiler.is_compiling():
        y, offsets, weights = _block_op(x, *params, num_segments, shift_div, grad)[:3]
    else:
        # the gradient's taps are prepared in the forward only when a backward can follow
        backward = torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params))
        y, offsets, weights = _BlockFunction.apply(x, *params, num_segments, shift_div, grad if backward else None)
    return y, offsets, weights
