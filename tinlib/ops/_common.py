"""Pieces shared by the eager (PyTorch) and Triton backends of the interlace op."""
from __future__ import annotations

import torch


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; float32/float16/bfloat16 are computed (accumulated) in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def group_rows(x: torch.Tensor, groups: int) -> torch.Tensor:
    """x: [N, T, C, HW] -> view [N, T, G, D] (D = C // G * HW) without copying when the channel
    and pixel axes are packed (true for channel slices of a contiguous tensor); else a copy."""
    n, t, c, hw = x.shape
    if (hw > 1 and x.stride(3) != 1) or (c > 1 and x.stride(2) != hw):
        x = x.contiguous()
    return x.view(n, t, groups, (c // groups) * hw)


def split_offsets(offset: torch.Tensor, weight: torch.Tensor, dtype: torch.dtype, steps: int):
    """offset: [N, G], weight: [N, T, G] -> k = floor(offset) [N, G] int64, f = offset - k [N, G] in
    [0, 1), w [N, T, G], in ``dtype``; steps = T. Offsets are first clamped to [-T-1, T+1]: an offset at
    or beyond that range reads only zeros, so the result (and the finite-difference offset gradient,
    then zero) is unchanged, while k stays a small integer."""
    off = offset.detach().to(dtype).clamp(-(steps + 1), steps + 1)
    k = torch.floor(off)
    f = off - k
    return k.to(torch.int64), f, weight.detach().to(dtype).contiguous()


# The gradient of embedding_bag's per-sample weights is exactly these dot products, in one fused
# pass, but it is a private aten op: where this PyTorch lacks it, or it has no kernel for the device,
# public ops give the same values with a temporary twice the size of the rows read.
FUSED_DOTS = hasattr(torch.ops.aten, "_embedding_bag_per_sample_weights_backward")


def pair_dots(grad: torch.Tensor, table: torch.Tensor, rows: torch.Tensor, entry_bags: torch.Tensor,
              pair_starts: torch.Tensor) -> torch.Tensor:
    """Dot products of gradient rows with pairs of table rows.

    grad: [B, D]; table: [R, D]; rows: [2P] int64 table rows, read in pairs; entry_bags: [2P] int64,
    the grad row of each entry (the same for both entries of a pair); pair_starts: [P] = 0, 2, 4, ...
    -> [2P], entry e = <grad[entry_bags[e]], table[rows[e]]>.
    """
    if FUSED_DOTS:
        try:
            return torch.ops.aten._embedding_bag_per_sample_weights_backward(
                grad, table, rows, pair_starts, entry_bags, 0, -1)
        except NotImplementedError:  # no kernel for this device
            pass
    sources = table.index_select(0, rows).view(-1, 2, table.shape[1])
    return torch.bmm(sources, grad.index_select(0, entry_bags[::2]).unsqueeze(-1)).view(-1)


def param_grads(dots: torch.Tensor, f: torch.Tensor, w: torch.Tensor):
    """Offset and weight gradients from per-row dot products.

    dots: [N, T, G, 2]; dots[..., j] = sum over the group's channels and pixels of
    grad_out[t] * X(t - k - j) (zero where that frame is outside [0, T)).
    f: [N, G], w: [N, T, G] -> (grad_offset [N, G], grad_weight [N, T, G]), contiguous.
    """
    dot0, dot1 = dots.unbind(-1)
    fe = f.unsqueeze(1)
    grad_weight = (1 - fe) * dot0 + fe * dot1
    grad_offset = (w * (dot1 - dot0)).sum(1)
    return grad_offset, grad_weight
