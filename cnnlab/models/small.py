"""Small CNNs for tiny images: the network of `make run` on 8x8 digits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct, global_avg_pool

PAPER = "cnnlab (2026): the make-run demo network, VGG's conv-conv-pool pattern (Simonyan & Zisserman 2015) shrunk"


@dataclass(frozen=True)
class SmallCNNConfig:
    """Widths of a four-conv network with two 2x2 max-pools (VGG's pattern, shrunk)."""

    in_chans: int = 1  # grey digits
    num_classes: int = 10
    width: int = 32  # channels of the first two convs; doubled after the first pool
    dropout: float = 0.1  # before the classifier


class SmallCNN(Classifier):
    """conv-conv-pool-conv-conv-pool-GAP-linear; 8x8 -> 4x4 -> 2x2 maps."""

    classifier_path = "fc"
    stage_names = ("stages.0", "stages.1")

    def __init__(self, config: SmallCNNConfig = SmallCNNConfig()) -> None:
        super().__init__()
        self.num_classes = config.num_classes
        w = config.width
        self.stages = nn.Sequential(
            nn.Sequential(ConvNormAct(config.in_chans, w, 3), ConvNormAct(w, w, 3), nn.MaxPool2d(2)),
            nn.Sequential(ConvNormAct(w, 2 * w, 3), ConvNormAct(2 * w, 2 * w, 3), nn.MaxPool2d(2)),
        )
        self.pool = global_avg_pool()
        self.dropout = nn.Dropout(config.dropout)
        self.fc = nn.Linear(2 * w, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the second stage's map (B, 2w, H/4, W/4)."""
        return self.stages(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits (B, num_classes) from the feature map."""
        x = self.pool(x)  # (B, 2w)
        x = self.dropout(x)
        return self.fc(x)  # (B, num_classes)


@register_model(family="small", paper=PAPER, year=2026, input_size=(1, 8, 8), small_input=True,
                min_train_size=4, min_eval_size=4, default_classes=10)
def small_cnn(num_classes: int = 10, in_chans: int = 1, width: int = 32, **kwargs: object) -> SmallCNN:
    """Return the small CNN of the digits demo (`cnnlab train` with no model named)."""
    return SmallCNN(SmallCNNConfig(in_chans=in_chans, num_classes=num_classes, width=width, **kwargs))
