"""All-CNN-C (Springenberg, Dosovitskiy, Brox, Riedmiller 2015): only convolutions, CIFAR-10.

Table 2's model C: each max-pool of the base network is replaced by a 3x3 convolution of
stride 2, and the classifier is a 1x1 convolution to one map per class followed by global
averaging over the final 6x6 maps. Dropout as the paper trains it: 20% on the input image,
50% after each layer that replaces a pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct, conv1x1, global_avg_pool

PAPER = "Springenberg, Dosovitskiy, Brox, Riedmiller: Striving for Simplicity: The All Convolutional Net"


@dataclass(frozen=True)
class AllConvConfig:
    """Widths of All-CNN-C and its dropout rates."""

    widths: tuple[int, int] = (96, 192)  # channels of the first and the second half
    input_dropout: float = 0.2  # on the image itself
    dropout: float = 0.5  # after each stride-2 convolution


def _conv_stack(in_channels: int, width: int) -> nn.Sequential:
    # 3x3 conv, 3x3 conv, then the 3x3 stride-2 conv that replaces the pool: 32 -> 16 -> 8.
    return nn.Sequential(
        ConvNormAct(in_channels, width, 3, padding=1, norm_layer=None),
        ConvNormAct(width, width, 3, padding=1, norm_layer=None),
        ConvNormAct(width, width, 3, stride=2, padding=1, norm_layer=None),
    )


class AllConvNet(Classifier):
    """Two stacks of three 3x3 convs (the last of stride 2), a valid 3x3, a 1x1, 1x1 classes, GAP.

    Table 2 rectifies the class maps too; here the logits stay linear so that a class score can
    be negative, as cross-entropy expects.
    """

    classifier_path = "classifier"
    stage_names = ("block1", "block2", "block3")

    def __init__(self, config: AllConvConfig, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        small, large = config.widths
        self.input_drop = nn.Dropout(config.input_dropout)
        self.block1 = _conv_stack(in_chans, small)
        self.drop1 = nn.Dropout(config.dropout)
        self.block2 = _conv_stack(small, large)
        self.drop2 = nn.Dropout(config.dropout)
        self.block3 = nn.Sequential(
            ConvNormAct(large, large, 3, padding=0, norm_layer=None),  # valid: 8 -> 6
            ConvNormAct(large, large, 1, norm_layer=None),
        )
        self.num_features = large
        self.classifier = conv1x1(large, num_classes)
        self.pool = global_avg_pool()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the map before the class conv, (B, 192, 6, 6) for a 32x32 input."""
        x = self.input_drop(x)
        x = self.drop1(self.block1(x))  # (B, 96, 16, 16)
        x = self.drop2(self.block2(x))  # (B, 192, 8, 8)
        return self.block3(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits: one map per class, each averaged over the 6x6 positions."""
        x = self.classifier(x)  # (B, num_classes, 6, 6)
        return self.pool(x)  # (B, num_classes)


@register_model(family="allconv", paper=PAPER, year=2015, input_size=(3, 32, 32), small_input=True, default_classes=10)
def all_cnn_c(num_classes: int = 10, in_chans: int = 3, **kwargs: object) -> AllConvNet:
    """Return All-CNN-C: strided convolutions instead of pooling, global averaging of class maps."""
    return AllConvNet(AllConvConfig(**kwargs), num_classes=num_classes, in_chans=in_chans)
