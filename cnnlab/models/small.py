"""Small CNNs for tiny images: the network of `make run` on 8x8 digits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.nn import ConvNormAct, global_avg_pool


@dataclass(frozen=True)
class SmallCNNConfig:
    """Widths of a four-conv network with two 2x2 max-pools (VGG's pattern, shrunk)."""

    in_chans: int = 1  # grey digits
    num_classes: int = 10
    width: int = 32  # channels of the first two convs; doubled after the first pool
    dropout: float = 0.1  # before the classifier


class SmallCNN(nn.Module):
    """conv-conv-pool-conv-conv-pool-GAP-linear; 8x8 -> 4x4 -> 2x2 maps."""

    def __init__(self, config: SmallCNNConfig = SmallCNNConfig()) -> None:
        super().__init__()
        w = config.width
        self.stages = nn.Sequential(
            nn.Sequential(ConvNormAct(config.in_chans, w, 3), ConvNormAct(w, w, 3), nn.MaxPool2d(2)),
            nn.Sequential(ConvNormAct(w, 2 * w, 3), ConvNormAct(2 * w, 2 * w, 3), nn.MaxPool2d(2)),
        )
        self.pool = global_avg_pool()
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(2 * w, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits (B, num_classes) for images (B, C, H, W)."""
        x = self.stages(x)  # (B, 2w, H/4, W/4)
        x = self.pool(x)  # (B, 2w)
        x = self.dropout(x)
        return self.fc(x)  # (B, num_classes)


def small_cnn(num_classes: int = 10, in_chans: int = 1, width: int = 32) -> SmallCNN:
    """Return the small CNN of the digits demo."""
    return SmallCNN(SmallCNNConfig(in_chans=in_chans, num_classes=num_classes, width=width))
