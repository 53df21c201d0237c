"""VGG (Simonyan & Zisserman 2015): stacks of 3x3 convolutions, five max-pools, three FC layers.

Configurations A, B, D and E of the paper's Table 1 (VGG-11, -13, -16, -19), each with or without
BatchNorm after every convolution (the `_bn` variants, added later by torchvision). Layers are
registered in torchvision's order so `load_torchvision_state_dict` maps its weights one to one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct

PAPER = "Simonyan, Zisserman: Very Deep Convolutional Networks for Large-Scale Image Recognition"


@dataclass(frozen=True)
class VGGConfig:
    """One column of Table 1: 3x3 convolutions per block, and whether BatchNorm follows each."""

    depths: tuple[int, int, int, int, int]  # convs in each of the five blocks, each ends in a pool
    widths: tuple[int, int, int, int, int] = (64, 128, 256, 512, 512)  # channels per block
    norm_layer: type[nn.Module] | None = None  # nn.BatchNorm2d for the _bn variants
    hidden: int = 4096  # units of fc6 and fc7
    dropout: float = 0.5  # after fc6 and fc7 (Sec. 3.1)


class VGG(Classifier):
    """Five blocks of 3x3 convs and a 2x2 max-pool, a 7x7 adaptive pool, fc6-fc7-fc8."""

    classifier_path = "classifier.fc8"
    stage_names = tuple(f"features.block{i}" for i in range(1, 6))

    def __init__(self, config: VGGConfig, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        in_channels = in_chans
        for index, (depth, width) in enumerate(zip(config.depths, config.widths, strict=True), start=1):
            layers: OrderedDict[str, nn.Module] = OrderedDict()
            for conv_index in range(1, depth + 1):
                # torchvision keeps the conv bias even before BatchNorm; so do we, to share weights.
                # In-place ReLU: its output is the conv's own tensor, so activation memory is
                # the 15.2 M elements the course quotes, not 28.8 M.
                layers[f"conv{conv_index}"] = ConvNormAct(
                    in_channels,
                    width,
                    3,
                    padding=1,
                    bias=True,
                    norm_layer=config.norm_layer,
                    act_layer=partial(nn.ReLU, inplace=True),
                )
                in_channels = width
            layers["pool"] = nn.MaxPool2d(2, stride=2)
            blocks[f"block{index}"] = nn.Sequential(layers)
        self.features = nn.Sequential(blocks)
        self.num_features = in_channels
        # At 224x224 the map is already 7x7; the pool lets other sizes reach fc6 (torchvision).
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            OrderedDict(
                fc6=nn.Linear(in_channels * 7 * 7, config.hidden),
                relu6=nn.ReLU(inplace=True),
                drop6=nn.Dropout(config.dropout),
                fc7=nn.Linear(config.hidden, config.hidden),
                relu7=nn.ReLU(inplace=True),
                drop7=nn.Dropout(config.dropout),
                fc8=nn.Linear(config.hidden, num_classes),
            )
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's scheme: He et al. 2015 for the convs, N(0, 0.01^2) for the FC layers.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0.0, 0.01)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block5 map (B, 512, H/32, W/32)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from fc6-fc7-fc8 on the 7x7-pooled map."""
        x = self.avgpool(x).flatten(1)  # (B, 512 * 7 * 7)
        return self.classifier(x)


def _vgg(depths: tuple[int, int, int, int, int], batch_norm: bool, num_classes: int, in_chans: int, **kwargs: object) -> VGG:
    # kwargs override VGGConfig fields: hidden=512 gives the narrow head of CIFAR-sized VGGs.
    config = VGGConfig(depths, norm_layer=nn.BatchNorm2d if batch_norm else None, **kwargs)
    return VGG(config, num_classes=num_classes, in_chans=in_chans)


@register_model(family="vgg", paper=PAPER, year=2015, torchvision="vgg11")
def vgg11(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> VGG:
    """Return VGG-11 (configuration A): [1, 1, 2, 2, 2] convs per block."""
    return _vgg((1, 1, 2, 2, 2), False, num_classes, in_chans, **kwargs)


@register_model(family="vgg", paper=PAPER, year=2015, torchvision="vgg13")
def vgg13(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> VGG:
    """Return VGG-13 (configuration B): [2, 2, 2, 2, 2] convs per block."""
    return _vgg((2, 2, 2, 2, 2), False, num_classes, in_chans, **kwargs)


@register_model(family="vgg", paper=PAPER, year=2015, torchvision="vgg16")
def vgg16(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> VGG:
    """Return VGG-16 (configuration D): [2, 2, 3, 3, 3] convs per block."""
    return _vgg((2, 2, 3, 3, 3), False, num_classes, in_chans, **kwargs)


@register_model(family="vgg", paper=PAPER, year=2015, torchvision="vgg19")
def vgg19(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> VGG:
    """Return VGG-19 (configuration E): [2, 2, 4, 4, 4] convs per block."""
    return _vgg((2, 2, 4, 4, 4), False, num_classes, in_chans, **kwargs)


@register_model(family="vgg", paper=PAPER, year=2015, torchvision="vgg11_bn")
def vgg11_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> VGG:
    """Return VGG-11 with BatchNorm after every convolution."""
    return _vgg((1, 1, 2, 2, 2), True, num_classes, in_chans, **kwargs)


@register_model(family="vgg", paper=PAPER, year=2015, torchvision="vgg13_bn")
def vgg13_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> VGG:
    """Return VGG-13 with BatchNorm after every convolution."""
    return _vgg((2, 2, 2, 2, 2), True, num_classes, in_chans, **kwargs)


@register_model(family="vgg", paper=PAPER, year=2015, torchvision="vgg16_bn")
def vgg16_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> VGG:
    """Return VGG-16 with BatchNorm after every convolution."""
    return _vgg((2, 2, 3, 3, 3), True, num_classes, in_chans, **kwargs)


@register_model(family="vgg", paper=PAPER, year=2015, torchvision="vgg19_bn")
def vgg19_bn(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> VGG:
    """Return VGG-19 with BatchNorm after every convolution."""
    return _vgg((2, 2, 4, 4, 4), True, num_classes, in_chans, **kwargs)
