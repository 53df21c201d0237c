"""The course's CIFAR-100 network (deck 004): factorised 1x3 / 3x1 conv blocks and strided convs.

The deck's table, read literally:

    ConvBlock 32, ConvBlock 32, Sub 32, ConvBlock 128, ConvBlock 128, Sub 128,
    global average pool, Linear 100

with ConvBlock = 2 x [Conv 1x3 - BN - ReLU - Conv 3x1 - BN - ReLU] (a 3x3 field for 6 instead of
9 weights per channel pair, as in Inception v3) and Sub = Conv 3x3 stride 2 - BN - ReLU in place
of pooling. Convolutions carry no bias, since BatchNorm's shift replaces it.

Parameters: the table sums to exactly 550,596. The deck prints "about 2 M"; that figure fits no
literal reading of the table (second-half widths of 256 instead of 128 would give 2,052,548),
so we build the table and trust its sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct, global_avg_pool


@dataclass(frozen=True)
class CourseNetConfig:
    """Widths of the two halves and the layers each conv is followed by."""

    widths: tuple[int, int] = (32, 128)  # channels before and after the first Sub
    norm_layer: type[nn.Module] | None = nn.BatchNorm2d  # None: no normalisation (the ablation's base), convs get biases
    act_layer: type[nn.Module] = nn.ReLU
    dropout: float = 0.0  # before the final Linear (the ablation's regularised arm); 0 adds no layer


class ConvBlock(nn.Sequential):
    """Two rounds of a 1x3 then a 3x1 conv, each followed by norm and activation."""

    def __init__(self, in_channels: int, out_channels: int, config: CourseNetConfig) -> None:
        super().__init__()
        layers = {"norm_layer": config.norm_layer, "act_layer": config.act_layer, "bias": config.norm_layer is None}
        for index in (1, 2):
            self.add_module(f"horizontal{index}", ConvNormAct(in_channels, out_channels, (1, 3), **layers))
            self.add_module(f"vertical{index}", ConvNormAct(out_channels, out_channels, (3, 1), **layers))
            in_channels = out_channels


class CourseCIFAR100(Classifier):
    """ConvBlock, ConvBlock, Sub (32 -> 16), ConvBlock, ConvBlock, Sub (16 -> 8), GAP, Linear."""

    classifier_path = "fc"
    stage_names = ("block1", "block2", "sub1", "block3", "block4", "sub2")

    def __init__(self, config: CourseNetConfig, num_classes: int = 100, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        narrow, wide = config.widths
        layers = {"norm_layer": config.norm_layer, "act_layer": config.act_layer, "bias": config.norm_layer is None}
        self.block1 = ConvBlock(in_chans, narrow, config)
        self.block2 = ConvBlock(narrow, narrow, config)
        self.sub1 = ConvNormAct(narrow, narrow, 3, stride=2, padding=1, **layers)
        self.block3 = ConvBlock(narrow, wide, config)
        self.block4 = ConvBlock(wide, wide, config)
        self.sub2 = ConvNormAct(wide, wide, 3, stride=2, padding=1, **layers)
        self.num_features = wide
        self.pool = global_avg_pool()
        if config.dropout:
            self.drop = nn.Dropout(config.dropout)
        self.fc = nn.Linear(wide, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the sub2 map (B, 128, H/4, W/4)."""
        x = self.block2(self.block1(x))  # (B, 32, H, W)
        x = self.sub1(x)  # (B, 32, H/2, W/2)
        x = self.block4(self.block3(x))  # (B, 128, H/2, W/2)
        return self.sub2(x)  # (B, 128, H/4, W/4)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the globally averaged map."""
        x = self.pool(x)  # (B, 128)
        drop = getattr(self, "drop", None)
        return self.fc(x if drop is None else drop(x))


# The deck carries no date; `year` (required by the registry) is a placeholder.
@register_model(family="course", paper="The course, deck 004: a CIFAR-100 network", year=2024, input_size=(3, 32, 32), small_input=True, default_classes=100)
def course_cifar100(num_classes: int = 100, in_chans: int = 3, **kwargs: object) -> CourseCIFAR100:
    """Return the course's CIFAR-100 network as deck 004's table gives it (550,596 parameters)."""
    return CourseCIFAR100(CourseNetConfig(**kwargs), num_classes=num_classes, in_chans=in_chans)


@register_model(family="course", paper="The course, deck 004: a CIFAR-100 network", year=2024, input_size=(3, 32, 32), small_input=True, default_classes=100)
def course_cifar100_nobn(num_classes: int = 100, in_chans: int = 3, **kwargs: object) -> CourseCIFAR100:
    """Return the course's CIFAR-100 network without BatchNorm, convs with biases: the base of deck 004's ablation."""
    return CourseCIFAR100(CourseNetConfig(**{"norm_layer": None, **kwargs}), num_classes=num_classes, in_chans=in_chans)


@register_model(family="course", paper="The course, deck 004: a CIFAR-100 network", year=2024, input_size=(3, 32, 32), small_input=True, default_classes=100)
def course_cifar100_dropout(num_classes: int = 100, in_chans: int = 3, **kwargs: object) -> CourseCIFAR100:
    """Return the course's CIFAR-100 network with dropout 0.3 before its Linear: the ablation's regularised arm."""
    return CourseCIFAR100(CourseNetConfig(**{"dropout": 0.3, **kwargs}), num_classes=num_classes, in_chans=in_chans)
