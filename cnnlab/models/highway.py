"""Convolutional Highway network (Srivastava, Greff, Schmidhuber 2015) for 32x32 images.

A highway layer (Eq. 3) mixes a transform and its input with a learned gate:
y = H(x) * T(x) + x * C(x), with the carry gate C = 1 - T and T = sigmoid(conv(x) + b_T).
A negative b_T at initialisation makes every layer start close to carrying x through, which is
what lets very deep plain stacks train (Sec. 2.2). The classifier is a small CIFAR net in the
spirit of the paper's Sec. 4: a stem conv, stages of highway layers joined by stride-2 convs,
global average pool, linear.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct
from cnnlab.nn.highway import HighwayLayer

PAPER = "Srivastava, Greff, Schmidhuber: Training Very Deep Networks"


@dataclass(frozen=True)
class HighwayConfig:
    """Widths and depths of the stages of a convolutional highway classifier."""

    widths: tuple[int, ...] = (32, 64, 128)  # channels per stage; a stride-2 conv enters stages 2+
    depths: tuple[int, ...] = (3, 3, 3)  # highway layers per stage
    kernel_size: int = 3  # of both H and T: the paper uses the same receptive field for each
    gate_bias: float = -2.0  # b_T at init; the paper suggests -1 to -3, more negative when deeper


class HighwayNet(Classifier):
    """Stem conv, highway stages (stride-2 conv between), global average pool, linear."""

    classifier_path = "fc"

    def __init__(self, config: HighwayConfig, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = ConvNormAct(in_chans, config.widths[0], 3, padding=1)
        self.stages = nn.Sequential()
        channels = config.widths[0]
        for index, (width, depth) in enumerate(zip(config.widths, config.depths, strict=True)):
            stage = nn.Sequential()
            if index > 0:
                # A highway layer cannot change shape (x and H(x) are mixed), so a plain conv does.
                stage.add_module("transition", ConvNormAct(channels, width, 3, stride=2, padding=1))
            for position in range(depth):
                stage.add_module(f"highway{position + 1}", HighwayLayer(width, config.kernel_size, config.gate_bias))
            self.stages.add_module(f"stage{index + 1}", stage)
            channels = width
        self.stage_names = tuple(f"stages.stage{i + 1}" for i in range(len(config.widths)))
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's map (B, num_features, H / 2^(stages-1), W / 2^(stages-1))."""
        x = self.stem(x)  # (B, widths[0], H, W)
        return self.stages(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the globally average-pooled map."""
        x = self.avgpool(x).flatten(1)  # (B, num_features)
        return self.fc(x)


@register_model(family="highway", paper=PAPER, year=2015, input_size=(3, 32, 32), small_input=True, default_classes=10)
def highway_net(num_classes: int = 10, in_chans: int = 3, **kwargs: object) -> HighwayNet:
    """Return a 3-stage convolutional highway net (32-64-128 channels, 3 highway layers each)."""
    return HighwayNet(HighwayConfig(**kwargs), num_classes=num_classes, in_chans=in_chans)
