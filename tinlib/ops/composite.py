"""The interlace op in a few lines of standard PyTorch: its documented semantics and the form to read
first, the ONNX export path (standard operators only) and the tests' oracle for the faster backends."""
from __future__ import annotations

import torch


def interlace_composite(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """TIN's temporal interlace of channel groups, written with differentiable standard ops.

    Args:
        x: ``[N, T, C, HW]`` float, the T frames of N videos; channel c belongs to group
            g = c // (C // G).
        offset: ``[N, G]`` float, a temporal offset per video and channel group.
        weight: ``[N, T, G]`` float, a weight per video, output frame and group.

    Returns:
        ``[N, T, C, HW]``: with k = floor(offset[n, g]) and f = offset[n, g] - k,
        ``out[n, t, c] = weight[n, t, g] * ((1 - f) * X(t - k) + f * X(t - k - 1))`` where
        ``X(s) = x[n, s, c]`` for 0 <= s < T and 0 otherwise (zero padding). That is, each group
        is shifted later in time by the offset, linearly interpolated between the two integer
        shifts k and k + 1 around it, and each output frame is scaled by its weight.

    Autograd through this function gives the true (adjoint) data gradient. floor has zero
    gradient, so the offset gradient holds k constant: d out / d offset = weight * (X(t-k-1) - X(t-k)).
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
