"""The interlace op in a few lines of standard PyTorch: its documented semantics and the form to read
first, the ONNX export path (standard operators only) and the tests' oracle for the faster backends."""
from __future__ import annotations

import torch


def interlace_composite(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """:func:`tinlib.ops.interlace` (shapes and formula there) written with differentiable standard ops.

    x: [N, T, C, HW], offset: [N, G], weight: [N, T, G] -> [N, T, C, HW]. Autograd through it gives the
    true (adjoint) data gradient; floor has zero gradient, so the offset gradient holds k constant:
    d out / d offset = weight * (X(t-k-1) - X(t-k)).
    """
    n, steps, c, hw = x.shape
    groups = offset.shape[1]
    xg = x.reshape(n, steps, groups, (c // groups) * hw)  # [N, T, G, D]
    k = torch.floor(offset)
    f = offset - k
    t = torch.arange(steps, device=x.device).to(offset.dtype).view(1, steps, 1)
    out = torch.zeros_like(xg)
    for extra_shift, coef in ((0, 1 - f), (1, f)):  # the two integer shifts k and k + 1
        src = t - k.unsqueeze(1) - extra_shift  # [N, T, G]: frame read, kept as a float (offsets may be huge)
        inside = (src >= 0) & (src <= steps - 1)
        scale = torch.where(inside, coef.unsqueeze(1) * weight, torch.zeros_like(weight))  # 0: zero padding
        frames = torch.gather(xg, 1, src.clamp(0, steps - 1).to(torch.int64).unsqueeze(-1).expand(xg.shape))
        out = out + scale.unsqueeze(-1) * frames
    return out.reshape(n, steps, c, hw)
