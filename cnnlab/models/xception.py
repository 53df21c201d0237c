"""Xception (Chollet 2017): Inception taken to its extreme, a stack of depth-wise separable convs.

Entry flow, middle flow (8 repeats) and exit flow as in the paper's Fig. 5, with the original
Keras layout (timm's `legacy_xception`): every conv and separable conv is followed by
BatchNorm, separable convs have no biases, and every block but the last two layers of the exit
flow has a residual connection (a 1x1 stride-2 conv + BN where the shape changes).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from cnnlab.models.base import Classifier, init_conv_bn
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct
from cnnlab.nn.xception import SeparableConvNorm, XceptionBlock

PAPER = "Chollet: Xception: Deep Learning with Depthwise Separable Convolutions"


@dataclass(frozen=True)
class XceptionConfig:
    """Channel widths of the three flows (the paper's Fig. 5)."""

    stem_widths: tuple[int, int] = (32, 64)  # two plain 3x3 convs, the first at stride 2, unpadded
    entry_widths: tuple[int, ...] = (128, 256, 728)  # one down-sampling block each
    middle_repeats: int = 8  # identical 728-channel blocks of three separable convs
    exit_widths: tuple[int, int] = (728, 1024)  # the last residual block: 728 -> 728 -> 1024
    head_widths: tuple[int, int] = (1536, 2048)  # two separable convs + ReLU before the pool


class Xception(Classifier):
    """Stem, entry flow (3 blocks), middle flow (8 blocks), exit flow, average pool, linear."""

    classifier_path = "fc"
    stage_names = ("entry_flow.0", "entry_flow.1", "entry_flow.2", "middle_flow", "exit_flow")

    def __init__(self, config: XceptionConfig, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        first, second = config.stem_widths
        self.stem = nn.Sequential(
            ConvNormAct(in_chans, first, 3, stride=2, padding=0),  # 299 -> 149
            ConvNormAct(first, second, 3, padding=0),  # 149 -> 147
        )
        entry, channels = [], second
        for index, width in enumerate(config.entry_widths):
            # The first block follows the stem's ReLU, so it does not start with another one.
            entry.append(XceptionBlock(channels, (width, width), 2, start_with_relu=index > 0))
            channels = width
        self.entry_flow = nn.Sequential(*entry)
        self.middle_flow = nn.Sequential(*[
            XceptionBlock(channels, (channels,) * 3, 1, start_with_relu=True)
            for _ in range(config.middle_repeats)
        ])
        head_1, head_2 = config.head_widths
        self.exit_flow = nn.Sequential(
            XceptionBlock(channels, config.exit_widths, 2, start_with_relu=True),
            SeparableConvNorm(config.exit_widths[-1], head_1),
            nn.ReLU(inplace=True),
            SeparableConvNorm(head_1, head_2),
            nn.ReLU(inplace=True),
        )
        self.num_features = head_2
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(head_2, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the exit-flow map (B, 2048, 10, 10) at 299x299."""
        x = self.stem(x)  # (B, 64, 147, 147)
        x = self.entry_flow(x)  # (B, 728, 19, 19)
        x = self.middle_flow(x)  # (B, 728, 19, 19)
        return self.exit_flow(x)  # (B, 2048, 10, 10)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the exit-flow map: global average pool, then linear."""
        x = self.global_pool(x).flatten(1)  # (B, 2048)
        return self.fc(x)


# Smallest side that runs: 3x3 stride-2 then 3x3 unpadded leave 1x1 from 7x7, and every later
# layer keeps a 1x1 map (pads 1 around its 3x3 windows). Training needs a batch of 2 there.
MIN_SIZE = 7


@register_model(
    family="xception", paper=PAPER, year=2017, input_size=(3, 299, 299),
    min_train_size=MIN_SIZE, min_eval_size=MIN_SIZE,
)
def xception(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> Xception:
    """Return Xception as in Fig. 5 (Keras layout; 22,855,952 parameters, as its Table 3)."""
    return Xception(replace(XceptionConfig(), **kwargs), num_classes=num_classes, in_chans=in_chans)
