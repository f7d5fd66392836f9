"""torchvision ResNets with a temporal module in front of every residual block's first conv."""
from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torchvision.models import resnet as tv_resnet

from tinlib.models.temporal import TemporalConv, TemporalInterlace, TemporalShift

DEPTHS = {
    18: (tv_resnet.BasicBlock, [2, 2, 2, 2]),
    34: (tv_resnet.BasicBlock, [3, 4, 6, 3]),
    50: (tv_resnet.Bottleneck, [3, 4, 6, 3]),
    101: (tv_resnet.Bottleneck, [3, 4, 23, 3]),
}
TEMPORAL_KINDS = ("tin", "tsm", "tsn")
DEFAULT_SHIFT_DIV = {"tin": 4, "tsm": 8}


def _stage(block: type[tv_resnet.BasicBlock | tv_resnet.Bottleneck], in_channels: int, planes: int, blocks: int,
           stride: int) -> nn.Sequential:
    """One ResNet stage as torchvision builds it: ``blocks`` residual blocks of width ``planes``, the
    first with the stride and, where the shape changes, a 1x1 conv + BN shortcut (``downsample``)."""
    out_channels = planes * block.expansion
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                                 nn.BatchNorm2d(out_channels))
    return nn.Sequential(block(in_channels, planes, stride, shortcut),
                         *(block(out_channels, planes) for _ in range(1, blocks)))


class ResNetBackbone(nn.Module):
    """torchvision's ResNet trunk (stem and stages, no pooling or classifier) of ``depth`` 18, 34, 50 or
    101, built from its public blocks; returns the last feature map. Parameter names are torchvision's,
    except that a block's ``conv1`` becomes ``conv1.conv`` (+ ``conv1.temporal`` for TIN) when a
    temporal module is inserted.

    ``base_channels``: the stem's and first stage's width; the stages have base_channels x (1, 2, 4, 8)
    (times 4 at a Bottleneck's output). 64 is the standard ResNet; smaller widths make small CPU demo
    models. ``num_stages``: the stages kept (MMAction2's ``num_stages``); the features then come from the
    last kept one, at 1/4, 1/8 or 1/16 of the input size.
    """

    def __init__(self, depth: int = 50, base_channels: int = 64, num_stages: int = 4):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
        if not 1 <= num_stages <= 4:
            raise ValueError(f"num_stages must be 1, 2, 3 or 4, got {num_stages}")
        if base_channels < 1:
            raise ValueError(f"base_channels must be positive, got {base_channels}")
        block, blocks_per_stage = DEPTHS[depth]
        self.depth, self.base_channels, self.num_stages = depth, base_channels, num_stages
        self.conv1 = nn.Conv2d(3, base_channels, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = base_channels
        for index, blocks in enumerate(blocks_per_stage[:num_stages]):
            planes = base_channels * 2 ** index
            self.add_module(f"layer{index + 1}", _stage(block, channels, planes, blocks, 1 if index == 0 else 2))
            channels = planes * block.expansion
        for module in self.modules():  # torchvision's initialization
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def stages(self) -> list[nn.Sequential]:
        """``layer1`` .. ``layer{num_stages}``, in forward order."""
        return [getattr(self, f"layer{index}") for index in range(1, self.num_stages + 1)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N*T, 3, H, W] -> features [N*T, C_out, H/s, W/s] (s = 32 with four stages)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x)
        return x

    @property
    def out_channels(self) -> int:
        """C_out, the channels of the last feature map (512 for ResNet18/34, 2048 for 50/101 at the
        standard width with four stages)."""
        last = self.stages()[-1][-1]
        norm = last.bn3 if isinstance(last, tv_resnet.Bottleneck) else last.bn2
        return cast(nn.BatchNorm2d, norm).num_features


def build_backbone(kind: str, depth: int = 50, num_segments: int = 8, shift_div: int | None = None,
                   interlace_grad: str = "adjoint", interlace_backend: str = "auto", *, base_channels: int = 64,
                   num_stages: int = 4) -> ResNetBackbone:
    """A ResNet of ``depth`` with TIN ("tin"), TSM ("tsm") or no ("tsn") temporal modules, for input
    [N*T, 3, H, W] (the T = num_segments frames of N clips in order). ``shift_div``: 1/fraction of the
    channels the temporal module moves (default 4 for TIN, 8 for TSM); ``interlace_grad`` and
    ``interlace_backend``: see :class:`TemporalInterlace`; ``base_channels``, ``num_stages``: see
    :class:`ResNetBackbone`. Like MMAction2, TIN goes into every block of every stage; TSM too, except
    that for nets with 23 or more blocks in layer3 it uses every second block there.
    """
    if kind not in TEMPORAL_KINDS:
        raise ValueError(f"temporal kind must be one of {TEMPORAL_KINDS}, got {kind!r}")
    backbone = ResNetBackbone(depth, base_channels, num_stages)
    if kind == "tsn":
        return backbone
    shift_div = shift_div or DEFAULT_SHIFT_DIV[kind]
    for layer in backbone.stages():
        every = 2 if kind == "tsm" and len(layer) >= 23 else 1
        for index, block in enumerate(layer):
            if index % every:
                continue
            conv = cast(nn.Conv2d, block.conv1)
            temporal: nn.Module
            if kind == "tin":
                temporal = TemporalInterlace(conv.in_channels, num_segments, shift_div,
                                             grad=interlace_grad, backend=interlace_backend)
            else:
                temporal = TemporalShift(num_segments, shift_div)
            block.conv1 = TemporalConv(temporal, conv)
    return backbone
