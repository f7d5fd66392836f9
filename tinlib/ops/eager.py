"""Pure-PyTorch kernel of the interlace op, for any device (backend "reference").

Viewing x as a table of rows (n, t, g) of D = C // G * HW values, every output row is a weighted sum
of two table rows: one memory-bound ``embedding_bag(mode="sum", per_sample_weights=...)`` pass, built
without host syncs. The data gradient has the same form; the offset/weight gradients are dot products."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ._common import compute_dtype, group_rows, pair_dots, param_grads, split_offsets


def _row_table(xv: torch.Tensor):
    """xv: [N, T, G, D] view (g stride D, d stride 1) -> (table [rows, D], row stride of n,
    row stride of t). Channel slices of a larger contiguous tensor are addressed in place."""
    n, steps, groups, d = xv.shape
    sn, st = xv.stride(0), xv.stride(1)
    if sn % d == 0 and st % d == 0:
        rows = ((n - 1) * sn + (steps - 1) * st) // d + groups
        return xv.as_strided((rows, d), (d, 1)), sn // d, st // d
    return xv.contiguous().view(-1, d), steps * groups, groups


@functools.lru_cache(maxsize=64)
def _grids(n: int, steps: int, groups: int, sn: int, direction: int, device: torch.device):
    """Constant pieces: t + direction * j as [1, T, 1, 2] and the table row base n * sn + g as
    [N, 1, G, 1] (int64); c = (1, 0) and m = (-1, 1) so that (1 - f, f) = c + f * m."""
    tj = torch.arange(steps, device=device).view(1, steps, 1, 1) + direction * torch.arange(2, device=device)
    base = ((torch.arange(n, device=device) * sn).view(n, 1, 1, 1)
            + torch.arange(groups, device=device).view(1, 1, groups, 1))
    return tj, base, torch.tensor([1.0, 0.0], device=device), torch.tensor([-1.0, 1.0], device=device)


@functools.lru_cache(maxsize=64)
def _pair_bags(bags: int, device: torch.device):
    """embedding_bag bookkeeping for bags of exactly two entries: (offsets [bags], bag of each
    entry [2 * bags])."""
    entry_bag = torch.arange(bags, device=device).repeat_interleave(2)
    return torch.arange(0, 2 * bags, 2, device=device), entry_bag


def _taps(k: torch.Tensor, f: torch.Tensor, w: torch.Tensor, sn: int, st: int, direction: int,
          weight_at_source: bool):
    """The two source rows and coefficients of every output row (n, t, g).

    k: [N, G] int64, f: [N, G], w: [N, T, G]. Tap j (0, 1) reads frame s = t + direction * (k + j)
    with coefficient (1 - f, f)[j] * w[t] (w[s] if weight_at_source), or 0 when s is outside
    [0, T). Returns rows [N*T*G, 2] (table rows, s clamped into range), coef [N*T*G, 2] and
    the validity mask [N, T, G, 2].
    """
    n, steps, groups = w.shape
    tj, base, c, m = _grids(n, steps, groups, sn, direction, w.device)
    src = torch.add(tj, k.view(n, 1, groups, 1), alpha=direction)
    inside = src.clamp(0, steps - 1)
    valid = inside == src
    rows = torch.add(base, inside, alpha=st)
    if weight_at_source:
        wt = w.unsqueeze(-1).expand(n, steps, groups, 2).gather(1, inside)
    else:
        wt = w.unsqueeze(-1)
    frac = torch.addcmul(c.to(f.dtype), f.view(n, 1, groups, 1), m.to(f.dtype))  # (1 - f, f)
    coef = (wt * frac).mul_(valid)
    return rows.view(-1, 2), coef.view(-1, 2), valid


def forward(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The interlace forward (the function of tinlib.ops.interlace): x: [N, T, C, HW], any strides;
    offset: [N, G]; weight: [N, T, G] -> [N, T, C, HW] in x's dtype (float32 math, float64 for float64)."""
    n, steps, c, hw = x.shape
    groups = offset.shape[1]
    cdt = compute_dtype(x.dtype)
    k, f, w = split_offsets(offset, weight, cdt, steps)
    # detached: a table that requires grad sends embedding_bag down its much slower training path
    table, sn, st = _row_table(group_rows(x.detach(), groups).to(cdt))
    rows, coef, _ = _taps(k, f, w, sn, st, -1, weight_at_source=False)
    out = F.embedding_bag(rows, table, per_sample_weights=coef, mode="sum")
    return out.view(n, steps, c, hw).to(x.dtype)


def backward(grad_out: torch.Tensor, x: torch.Tensor | None, offset: torch.Tensor, weight: torch.Tensor,
             grad: str, need_x: bool, need_params: bool):
    """Gradients of the forward: grad_out, x: [N, T, C, HW] (x read only for need_params, else may be
    None); offset: [N, G]; weight: [N, T, G] -> (grad_x if need_x, grad_offset and grad_weight if
    need_params, else None) in the dtypes of grad_out, offset and weight. With GW = grad_out * weight
    (zero outside [0, T)), "adjoint": grad_x[t] = (1-f) GW[t+k] + f GW[t+k+1]; "mmcv": (1-f) GW[t-k] + f GW[t-k-1].
    """
    n, steps, c, hw = grad_out.shape
    groups = offset.shape[1]
    cdt = compute_dtype(grad_out.dtype)
    k, f, w = split_offsets(offset, weight, cdt, steps)
    gv = group_rows(grad_out.detach(), groups).to(cdt)
    grad_x = grad_offset = grad_weight = None
    if need_x:
        table, sn, st = _row_table(gv)
        rows, coef, _ = _taps(k, f, w, sn, st, 1 if grad == "adjoint" else -1, weight_at_source=True)
        grad_x = F.embedding_bag(rows, table, per_sample_weights=coef, mode="sum")
        grad_x = grad_x.view(n, steps, c, hw).to(grad_out.dtype)
    if need_params:
        if x is None:
            raise ValueError("interlace backward: x is needed for the offset/weight gradients")
        table, sn, st = _row_table(group_rows(x.detach(), groups).to(cdt))
        rows, _, valid = _taps(k, f, w, sn, st, -1, weight_at_source=False)
        # each grad_out row's dot products with its two source rows, viewed as [N, T, G, 2]
        pair_starts, entry_bags = _pair_bags(rows.shape[0], rows.device)
        dots = pair_dots(gv.reshape(-1, gv.shape[-1]), table, rows.view(-1), entry_bags, pair_starts)
        dots = torch.where(valid, dots.view(valid.shape), 0)
        grad_offset, grad_weight = param_grads(dots, f, w)
        grad_offset, grad_weight = grad_offset.to(offset.dtype), grad_weight.to(weight.dtype)
    return grad_x, grad_offset, grad_weight

