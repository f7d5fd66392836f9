"""Baseline for the benchmarks: MMAction2 0.x's TIN temporal module, re-implemented in plain PyTorch.

MMAction2 itself cannot be installed here (its TIN needs mmcv's compiled ``tin_shift``, a CUDA
kernel), so this file re-writes the computation of its ``TemporalInterlace`` (mmaction 0.x,
``models/backbones/resnet_tin.py``) step by step, keeping the same tensor traffic: the zero-filled
output, the ``view``/``contiguous``/``permute`` calls, the two integer shifts of ``linear_sampler``
(each a zero-filled tensor plus one copy per video and channel group, which is what mmcv's
``tin_shift`` kernel writes), the ``repeat``-expanded interpolation and segment weights, and the
copy of the unshifted channels. mmcv's ``tin_shift`` backward applies the forward shift to the
incoming gradient again; ``TinShiftMMCV`` does the same. This is our re-implementation of its
computation, not MMAction2's or mmcv's code; parameter names match MMAction2's (and tinlib's), so
``load_state_dict`` of a ``tinlib.models.TemporalInterlace`` state dict works.
"""
from __future__ import annotations

import torch
from torch import nn


def _shift_copy(x: torch.Tensor, shift: list[list[int]]) -> torch.Tensor:
    """x: [N, T, C, HW], shift: N lists of G ints -> out[n, t, c] = x[n, t - s, c] (0 outside)."""
    n, steps, c, _ = x.shape
    cg = c // len(shift[0])
    out = torch.zeros_like(x)
    for i in range(n):
        for g, s in enumerate(shift[i]):
            ch = slice(g * cg, (g + 1) * cg)
            if 0 <= s < steps:
                out[i, s:, ch] = x[i, :steps - s, ch]
            elif 0 < -s < steps:
                out[i, :steps + s, ch] = x[i, -s:, ch]
    return out


class TinShiftMMCV(torch.autograd.Function):
    """mmcv's tin_shift: integer shift per (video, channel group); its backward shifts the
    gradient by the same amount (not the opposite one) and gives the shift no gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.shift = shift.tolist()
        return _shift_copy(x, ctx.shift)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        return _shift_copy(grad_out, ctx.shift), None


def linear_sampler(data: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """data: [N, T, C, H, W], offset: [N, G] -> [N, T, C, H, W] linearly sampled in time."""
    n, t, c, h, w = data.shape
    offset0 = torch.floor(offset).int()
    offset1 = offset0 + 1
    data = data.view(n, t, c, h * w).contiguous()
    data0 = TinShiftMMCV.apply(data, offset0)
    data1 = TinShiftMMCV.apply(data, offset1)
    weight0 = 1 - (offset - offset0.float())
    weight1 = 1 - weight0
    groups = offset.shape[1]
    weight0 = weight0[:, :, None].repeat(1, 1, c // groups).view(n, -1)[:, None, :, None]
    weight1 = weight1[:, :, None].repeat(1, 1, c // groups).view(n, -1)[:, None, :, None]
    return (weight0 * data0 + weight1 * data1).view(n, t, c, h, w)


class WeightNet(nn.Module):
    def __init__(self, in_channels: int, groups: int):
        super().__init__()
        self.groups = groups
        self.conv = nn.Conv1d(in_channels, groups, 3, padding=1)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t = x.shape
        x = self.conv(x).view(n, self.groups, t).permute(0, 2, 1)
        return 2 * torch.sigmoid(x)


class OffsetNet(nn.Module):
    def __init__(self, in_channels: int, groups: int, num_segments: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, 1, 3, padding=1)
        self.fc1 = nn.Linear(num_segments, num_segments)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(num_segments, groups)
        nn.init.constant_(self.fc2.bias, 0.5108)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t = x.shape
        x = self.conv(x).view(n, t)
        x = self.fc2(self.relu(self.fc1(x))).view(n, 1, -1)
        return 4 * (torch.sigmoid(x) - 0.5)


class TemporalInterlaceMMAction2(nn.Module):
    """x: [N*T, C, H, W] -> [N*T, C, H, W], computed the way MMAction2 0.x's module does."""

    def __init__(self, in_channels: int, num_segments: int = 8, shift_div: int = 4):
        super().__init__()
        self.num_segments, self.shift_div = num_segments, shift_div
        self.offset_net = OffsetNet(in_channels // shift_div, 2, num_segments)
        self.weight_net = WeightNet(in_channels // shift_div, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.size()
        batches, folds = n // self.num_segments, c // self.shift_div
        x_out = torch.zeros((n, c, h, w), device=x.device)
        descriptor = x[:, :folds, :, :].view(batches, self.num_segments, folds, h, w)
        pooled = torch.mean(torch.mean(descriptor, 3), 3).permute(0, 2, 1).contiguous()
        offset = self.offset_net(pooled).view(batches, -1)
        weight = self.weight_net(pooled)
        offset = torch.cat([offset, -offset], 1)
        shifted = linear_sampler(descriptor, offset)
        weight = weight[:, :, :, None].repeat(1, 1, 2, folds // 2 // 2).view(batches, self.num_segments, -1)
        shifted = (shifted * weight[:, :, :, None, None]).contiguous().view(n, folds, h, w)
        x_out[:, :folds, :] = shifted
        x_out[:, folds:, :] = x[:, folds:, :]
        return x_out
