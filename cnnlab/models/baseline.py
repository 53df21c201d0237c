"""Baselines a real network must beat: a single 1x1 convolution, per-pixel logistic regression.

It sees one pixel's channels and nothing around it, so on a segmentation task it can tell ink
from background but never which digit the ink belongs to; the gap to a U-Net is the value of
context (the receptive field).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.registry import register_model
from cnnlab.nn import conv1x1

PAPER = "Cox 1958: The Regression Analysis of Binary Sequences (logistic regression), applied per pixel"


class Pointwise(nn.Module):
    """One 1x1 convolution from the input channels to the classes."""

    def __init__(self, num_classes: int = 11, in_chans: int = 1) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.head = conv1x1(in_chans, num_classes)

    def feature_layers(self) -> list[str]:
        """Return the one layer there is."""
        return ["head"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return per-pixel class scores (B, num_classes, H, W)."""
        return self.head(x)


@register_model(family="baseline", paper=PAPER, year=1958, input_size=(1, 64, 64), min_train_size=1,
                min_eval_size=1, classifier=False, default_classes=11)
def pointwise(num_classes: int = 11, in_chans: int = 1) -> Pointwise:
    """Return the 1x1-convolution segmentation baseline."""
    return Pointwise(num_classes=num_classes, in_chans=in_chans)
