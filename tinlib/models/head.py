"""The TSM head used by every TIN row: per-segment classifier, logits averaged over segments."""
from __future__ import annotations

import torch
from torch import nn


class TSMHead(nn.Module):
    """features [B*V*T, C, h, w] -> class scores [B*V, K] (mean of per-segment logits).

    As in MMAction2, the segment count used to regroup frames is the head's own
    ``num_segments``, not the runtime frame count.
    """

    def __init__(self, num_classes: int, in_channels: int = 2048, num_segments: int = 8,
                 dropout: float = 0.8, init_std: float = 0.001):
        super().__init__()
        self.num_classes, self.num_segments = num_classes, num_segments
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc_cls = nn.Linear(in_channels, num_classes)
        nn.init.normal_(self.fc_cls.weight, 0.0, init_std)
        nn.init.zeros_(self.fc_cls.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features: [B*V*T, C, h, w] -> scores [B*V, K]: pooled, dropout, linear, then the mean
        over each run of ``num_segments`` frames."""
        logits = self.fc_cls(self.dropout(self.pool(features).flatten(1)))
        return logits.view(-1, self.num_segments, self.num_classes).mean(dim=1)
