"""torchvision ResNets with a temporal module in front of every residual block's first conv."""
from __future__ import annotations

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


class ResNetBackbone(tv_resnet.ResNet):
    """torchvision's ResNet without its pooling and classifier; returns the last feature map.

    Parameter names are torchvision's (``conv1``, ``bn1``, ``layerL.B.convK``, ``downsample.0``),
    except that a block's ``conv1`` becomes ``conv1.conv`` (+ ``conv1.temporal`` for TIN) when a
    temporal module is inserted.
    """

    def __init__(self, depth: int = 50):
        if depth not in DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(DEPTHS)}, got {depth}")
        block, layers = DEPTHS[depth]
        super().__init__(block, layers)
        self.depth = depth
        del self.avgpool, self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N*T, 3, H, W] -> features [N*T, C_out, H/32, W/32]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def blocks(self) -> list[nn.Module]:
        """The residual blocks of ``layer1`` .. ``layer4``, in forward order."""
        return [block for layer in (self.layer1, self.layer2, self.layer3, self.layer4) for block in layer]

    @property
    def out_channels(self) -> int:
        """C_out, the channels of the last feature map (512 for ResNet18/34, 2048 for 50/101)."""
        return 512 * self.layer4[-1].expansion


def build_backbone(kind: str, depth: int = 50, num_segments: int = 8, shift_div: int | None = None,
                   interlace_grad: str = "adjoint", interlace_backend: str = "auto") -> ResNetBackbone:
    """A ResNet of ``depth`` with TIN ("tin"), TSM ("tsm") or no ("tsn") temporal modules.

    Like MMAction2, TIN goes into every block of every stage; TSM too, except that for
    nets with 23 or more blocks in layer3 it uses every second block there.

    Args:
        kind: "tin", "tsm" or "tsn".
        depth: 18, 34, 50 or 101.
        num_segments: T; the backbone's input is [N*T, 3, H, W], the frames of N clips in order.
        shift_div: 1/fraction of channels the temporal module moves (default 4 for TIN, 8 for TSM).
        interlace_grad, interlace_backend: TIN's gradient and kernel (see :class:`TemporalInterlace`).
    """
    if kind not in TEMPORAL_KINDS:
        raise ValueError(f"temporal kind must be one of {TEMPORAL_KINDS}, got {kind!r}")
    backbone = ResNetBackbone(depth)
    if kind == "tsn":
        return backbone
    shift_div = shift_div or DEFAULT_SHIFT_DIV[kind]
    for layer in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        every = 2 if kind == "tsm" and len(layer) >= 23 else 1
        for index, block in enumerate(layer):
            if index % every:
                continue
            conv = block.conv1
            temporal: nn.Module
            if kind == "tin":
                temporal = TemporalInterlace(conv.in_channels, num_segments, shift_div,
                                             grad=interlace_grad, backend=interlace_backend)
            else:
                temporal = TemporalShift(num_segments, shift_div)
            block.conv1 = TemporalConv(temporal, conv)
    return backbone
