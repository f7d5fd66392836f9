"""Triton kernels of the interlace op (CUDA, or CPU tensors under TRITON_INTERPRET=1).

One program computes one output row (n, g, t) of the [N, T, G, D] view for one block of D, reading
at most two source rows; arithmetic in float32 (float64 for float64). The offset/weight gradients
are per-program partial dot products that torch sums afterwards: deterministic, no atomics."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import compute_dtype, group_rows, param_grads, split_offsets

MAX_BLOCK = 1024  # elements of D per program (tests lower it to exercise several blocks)


@triton.jit
def _interlace_fwd_kernel(x_ptr, out_ptr, k_ptr, f_ptr, w_ptr,
                          x_sn, x_st, T, G, D, BLOCK: tl.constexpr):
    row = tl.program_id(0)  # = (n * G + g) * T + t
    ng = row // T
    t = row % T
    n = ng // G
    g = ng % G
    k = tl.load(k_ptr + ng)
    f = tl.load(f_ptr + ng)
    w = tl.load(w_ptr + (n * T + t) * G + g)
    d = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    in_d = d < D
    base = n.to(tl.int64) * x_sn + g.to(tl.int64) * D + d
    s0 = t - k
    s1 = s0 - 1
    x0 = tl.load(x_ptr + base + s0.to(tl.int64) * x_st, mask=in_d & (s0 >= 0) & (s0 < T), other=0.0)
    # f == 0 (integer offset): the second tap is not read at all
    m1 = (s1 >= 0) & (s1 < T) & (f != 0)
    x1 = tl.load(x_ptr + base + s1.to(tl.int64) * x_st, mask=in_d & m1, other=0.0)
    y = w * ((1 - f) * x0.to(f.dtype) + f * x1.to(f.dtype))
    out_row = ((n * T + t) * G + g).to(tl.int64) * D
    tl.store(out_ptr + out_row + d, y.to(out_ptr.dtype.element_ty), mask=in_d)


@triton.jit
def _interlace_bwd_kernel(g_ptr, x_ptr, gx_ptr, part_ptr, k_ptr, f_ptr, w_ptr,
                          g_sn, g_st, x_sn, x_st, T, G, D, ROWS, NBLK,
                          ADJOINT: tl.constexpr, NEED_X: tl.constexpr, NEED_PARAMS: tl.constexpr,
                          BLOCK: tl.constexpr):
    row = tl.program_id(0)  # = (n * G + g) * T + t
    blk = tl.program_id(1)
    ng = row // T
    t = row % T
    n = ng // G
    g = ng % G
    k = tl.load(k_ptr + ng)
    f = tl.load(f_ptr + ng)
    d = blk * BLOCK + tl.arange(0, BLOCK)
    in_d = d < D
    g_base = n.to(tl.int64) * g_sn + g.to(tl.int64) * D + d
    if NEED_X:
        # grad_x[t] = (1-f) GW[u0] + f GW[u1], GW[u] = grad_out[u] * w[u]
        if ADJOINT:
            u0 = t + k
            u1 = u0 + 1
        else:
            u0 = t - k
            u1 = u0 - 1
        m0 = (u0 >= 0) & (u0 < T)
        m1 = (u1 >= 0) & (u1 < T) & (f != 0)
        w0 = tl.load(w_ptr + (n * T + u0) * G + g, mask=m0, other=0.0)
        w1 = tl.load(w_ptr + (n * T + u1) * G + g, mask=m1, other=0.0)
        g0 = tl.load(g_ptr + g_base + u0.to(tl.int64) * g_st, mask=in_d & m0, other=0.0)
        g1 = tl.load(g_ptr + g_base + u1.to(tl.int64) * g_st, mask=in_d & m1, other=0.0)
        gx = (1 - f) * w0 * g0.to(f.dtype) + f * w1 * g1.to(f.dtype)
        out_row = ((n * T + t) * G + g).to(tl.int64) * D
        tl.store(gx_ptr + out_row + d, gx.to(gx_ptr.dtype.element_ty), mask=in_d)
    if NEED_PARAMS:
        # partial sums over this block of <grad_out[t], X(t-k)> and <grad_out[t], X(t-k-1)>
        x_base = n.to(tl.int64) * x_sn + g.to(tl.int64) * D + d
        s0 = t - k
        s1 = s0 - 1
        go = tl.load(g_ptr + g_base + t.to(tl.int64) * g_st, mask=in_d, other=0.0).to(f.dtype)
        x0 = tl.load(x_ptr + x_base + s0.to(tl.int64) * x_st, mask=in_d & (s0 >= 0) & (s0 < T), other=0.0)
        x1 = tl.load(x_ptr + x_base + s1.to(tl.int64) * x_st, mask=in_d & (s1 >= 0) & (s1 < T), other=0.0)
        tl.store(part_ptr + row * NBLK + blk, tl.sum(go * x0.to(f.dtype), axis=0))
        tl.store(part_ptr + (ROWS + row) * NBLK + blk, tl.sum(go * x1.to(f.dtype), axis=0))


def _block(d: int) -> int:
    return max(16, min(MAX_BLOCK, triton.next_power_of_2(max(d, 1))))


def forward(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The interlace forward (the function of tinlib.ops.interlace): x: [N, T, C, HW], any strides
    over N and T; offset: [N, G]; weight: [N, T, G] -> [N, T, C, HW] in x's dtype, contiguous."""
    n, steps, c, hw = x.shape
    groups = offset.shape[1]
    k, f, w = split_offsets(offset, weight, compute_dtype(x.dtype), steps)
    xv = group_rows(x, groups)
    d = xv.shape[-1]
    out = torch.empty((n, steps, c, hw), dtype=x.dtype, device=x.device)
    block = _block(d)
    grid = (n * groups * steps, triton.cdiv(d, block))
    _interlace_fwd_kernel[grid](xv, out, k.to(torch.int32), f, w, xv.stride(0), xv.stride(1),
                                steps, groups, d, BLOCK=block)
    return out


def backward(grad_out: torch.Tensor, x: torch.Tensor | None, offset: torch.Tensor, weight: torch.Tensor,
             grad: str, need_x: bool, need_params: bool):
    """Gradients of the forward; the arguments, shapes and results of eager.backward."""
    n, steps, c, hw = grad_out.shape
    groups = offset.shape[1]
    cdt = compute_dtype(grad_out.dtype)
    k, f, w = split_offsets(offset, weight, cdt, steps)
    gv = group_rows(grad_out, groups)
    if need_params and x is None:
        raise ValueError("interlace backward: x is needed for the offset/weight gradients")
    xv = group_rows(x, groups) if x is not None and need_params else gv  # x unused without need_params
    d = gv.shape[-1]
    block = _block(d)
    rows, nblk = n * groups * steps, triton.cdiv(d, block)
    gx = torch.empty((n, steps, c, hw), dtype=grad_out.dtype, device=grad_out.device) if need_x else gv
    # never a null pointer: a 1-element buffer when the partial sums are not needed
    part = torch.empty((2, rows, nblk) if need_params else (1,), dtype=cdt, device=grad_out.device)
    _interlace_bwd_kernel[(rows, nblk)](
        gv, xv, gx, part, k.to(torch.int32), f, w,
        gv.stride(0), gv.stride(1), xv.stride(0), xv.stride(1), steps, groups, d, rows, nblk,
        ADJOINT=grad == "adjoint", NEED_X=need_x, NEED_PARAMS=need_params, BLOCK=block)
    grad_offset = grad_weight = None
    if need_params:
        dots = part.sum(-1).view(2, n, groups, steps).permute(1, 3, 2, 0)  # -> [N, T, G, 2]
        grad_offset, grad_weight = param_grads(dots, f, w)
        grad_offset, grad_weight = grad_offset.to(offset.dtype), grad_weight.to(weight.dtype)
    return (gx if need_x else None), grad_offset, grad_weight
