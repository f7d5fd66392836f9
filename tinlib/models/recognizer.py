"""Recognizer = temporal ResNet backbone + TSM head, and ``build_recognizer``."""
from __future__ import annotations

import torch
from torch import nn

from tinlib.config import parse_arch
from tinlib.models.backbone import ResNetBackbone, build_backbone
from tinlib.models.head import TSMHead

AVERAGE_CLIPS = ("prob", "score", None)


class Recognizer(nn.Module):
    """Video classifier over T segments sampled from a video.

    ``model(x)``, x: [B, V*T, 3, H, W] float frames (V views of T segments, V = 1 in training),
    the loaders' uint8 clips after ``tinlib.data.normalize`` on the device -> class scores [B, K]:
    per-view logits averaged over segments, then over views.
    ``predict`` chooses how views are averaged for testing.
    """

    def __init__(self, backbone: ResNetBackbone, head: TSMHead, arch: str):
        super().__init__()
        self.backbone, self.cls_head, self.arch = backbone, head, arch
        self.num_segments = head.num_segments
        self.num_classes = head.num_classes

    def view_scores(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, V*T, 3, H, W] -> per-view scores [B, V, K] (logits averaged over segments)."""
        if x.dim() != 5 or x.shape[2] != 3:
            raise ValueError(f"{self.arch}: expected frames [B, V*T, 3, H, W], got {list(x.shape)}")
        b, frames = x.shape[:2]
        if frames % self.num_segments:
            raise ValueError(f"{self.arch}: {frames} frames per sample is not a multiple of "
                             f"num_segments={self.num_segments}")
        scores = self.cls_head(self.backbone(x.flatten(0, 1)))
        return scores.view(b, frames // self.num_segments, self.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, V*T, 3, H, W] -> scores [B, K], the raw per-view scores averaged over the views."""
        return self.view_scores(x).mean(dim=1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, average_clips: str | None = "prob") -> torch.Tensor:
        """Test-time scores of x: [B, V*T, 3, H, W] (V views of T segments) -> [B, K]. ``average_clips``:
        "prob" averages the softmax over views (MMAction2 1.x), "score" the raw scores, None returns the
        raw scores and allows a single view only (0.x)."""
        if average_clips not in AVERAGE_CLIPS:
            raise ValueError(f"average_clips must be one of {AVERAGE_CLIPS}, got {average_clips!r}")
        scores = self.view_scores(x)
        if average_clips is None:
            if scores.shape[1] != 1:
                raise ValueError("average_clips=None keeps raw per-view scores; use 'prob' or 'score' for "
                                 f"{scores.shape[1]} views")
            return scores[:, 0]
        if average_clips == "prob":
            scores = scores.softmax(dim=2)
        return scores.mean(dim=1)


def build_recognizer(arch: str, num_classes: int, num_segments: int = 8, *, dropout: float = 0.5,
                     shift_div: int | None = None, interlace_grad: str = "adjoint",
                     interlace_backend: str = "auto", pretrained: str | None = None,
                     init_std: float = 0.001, base_channels: int = 64, num_stages: int = 4) -> Recognizer:
    """The :class:`Recognizer` ``arch`` = ``tin_rD``, ``tsm_rD`` or ``tsn_rD`` (D in 18, 34, 50, 101) for
    K = ``num_classes``: ``model(x)`` maps [B, V*T, 3, H, W] to [B, K], T = ``num_segments`` per view.

    ``shift_div``: 1/fraction of channels shifted (default 4 for TIN, 8 for TSM); ``interlace_grad``:
    TIN's data gradient, "adjoint" or "mmcv" (see tinlib.ops); ``interlace_backend``: "auto", "triton"
    or "reference". ``pretrained``: None, a local checkpoint of ImageNet ResNet weights (any layout
    tinlib.checkpoint reads), or "torchvision://resnetD" for torchvision's ImageNet V1 weights (needs
    internet); the temporal modules and the head keep their own initialization. ``dropout`` and
    ``init_std`` (of the classifier's weights) are the head's; ``base_channels`` and ``num_stages`` the
    backbone's (see :class:`~tinlib.models.backbone.ResNetBackbone`).
    """
    kind, depth = parse_arch(arch)
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    backbone = build_backbone(kind, depth, num_segments, shift_div, interlace_grad, interlace_backend,
                              base_channels=base_channels, num_stages=num_stages)
    head = TSMHead(num_classes, backbone.out_channels, num_segments, dropout, init_std)
    model = Recognizer(backbone, head, arch)
    if pretrained:
        from tinlib.checkpoint import load_pretrained_backbone

        load_pretrained_backbone(model, pretrained)
    return model
