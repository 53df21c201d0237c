"""DenseNet (Huang, Liu, van der Maaten, Weinberger 2017): every layer sees all earlier maps.

Within a dense block, layer l receives the concatenation [x_0, ..., x_{l-1}] (Eq. 2) and adds k
("growth rate") channels. DenseNet-BC puts a 1x1 bottleneck to 4k channels before each 3x3 conv
("B") and halves the channels at each transition ("C", compression 0.5). The ImageNet variants
register their layers in torchvision's order (features.conv0 ... features.norm5, classifier), so
`load_torchvision_state_dict` maps its weights one to one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import conv
from cnnlab.nn.dense import DenseBlock, Transition

PAPER = "Huang, Liu, van der Maaten, Weinberger: Densely Connected Convolutional Networks"


class Stem(Enum):
    """The layers before the first dense block."""

    IMAGENET = "imagenet"  # 7x7/2 conv, BN, ReLU, 3x3/2 max-pool: 224 -> 56 (Table 1)
    CIFAR = "cifar"  # one 3x3 conv, no down-sampling (Sec. 4, 32x32 input)


@dataclass(frozen=True)
class DenseNetConfig:
    """One DenseNet-BC variant."""

    blocks: tuple[int, ...]  # dense layers per block, e.g. 6-12-24-16 for DenseNet-121 (Table 1)
    growth_rate: int = 32  # k: channels each dense layer adds
    stem_channels: int = 64  # output channels of the first conv (2k in the paper)
    bottleneck_factor: int = 4  # the 1x1 "B" conv outputs bottleneck_factor * k channels
    compression: float = 0.5  # theta: a transition keeps floor(theta * m) of its m channels
    stem: Stem = Stem.IMAGENET
    drop_rate: float = 0.0  # dropout after each 3x3 conv (the paper: 0.2 on CIFAR without augmentation)


class DenseNet(Classifier):
    """Stem, dense blocks joined by transitions, final BN-ReLU, global average pool, linear."""

    classifier_path = "classifier"

    def __init__(self, config: DenseNetConfig, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential()
        if config.stem is Stem.IMAGENET:
            self.features.add_module("conv0", conv(in_chans, config.stem_channels, 7, stride=2, padding=3, bias=False))
            self.features.add_module("norm0", nn.BatchNorm2d(config.stem_channels))
            self.features.add_module("relu0", nn.ReLU(inplace=True))
            self.features.add_module("pool0", nn.MaxPool2d(3, stride=2, padding=1))
        else:
            self.features.add_module("conv0", conv(in_chans, config.stem_channels, 3, padding=1, bias=False))
        channels = config.stem_channels
        for index, num_layers in enumerate(config.blocks, start=1):
            block = DenseBlock(num_layers, channels, growth_rate=config.growth_rate,
                               bottleneck_factor=config.bottleneck_factor, drop_rate=config.drop_rate)
            self.features.add_module(f"denseblock{index}", block)
            channels = block.out_channels
            if index < len(config.blocks):
                out_channels = int(config.compression * channels)  # floor(theta m)
                self.features.add_module(f"transition{index}", Transition(channels, out_channels))
                channels = out_channels
        last = len(config.blocks) + 1  # torchvision's numbering: norm5 after four blocks
        self.features.add_module(f"norm{last}", nn.BatchNorm2d(channels))
        self.features.add_module(f"relu{last}", nn.ReLU(inplace=True))
        self.stage_names = tuple(f"features.denseblock{i}" for i in range(1, len(config.blocks) + 1))
        self.num_features = channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's init: He normal (fan-in) convs, BN to identity, zero linear bias.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the map after the final BN-ReLU (B, num_features, H/32, W/32 on ImageNet)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the globally average-pooled map."""
        x = self.pool(x).flatten(1)  # (B, num_features)
        return self.classifier(x)


def _densenet(config: DenseNetConfig, num_classes: int, in_chans: int, drop_rate: float = 0.0) -> DenseNet:
    return DenseNet(replace(config, drop_rate=drop_rate), num_classes=num_classes, in_chans=in_chans)


@register_model(family="densenet", paper=PAPER, year=2017, torchvision="densenet121")
def densenet121(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> DenseNet:
    """Return DenseNet-121 (BC, k = 32): dense blocks of 6, 12, 24, 16 layers."""
    return _densenet(DenseNetConfig((6, 12, 24, 16)), num_classes, in_chans, **kwargs)


@register_model(family="densenet", paper=PAPER, year=2017, torchvision="densenet161")
def densenet161(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> DenseNet:
    """Return DenseNet-161 (BC, k = 48, 96-channel stem): dense blocks of 6, 12, 36, 24 layers."""
    return _densenet(DenseNetConfig((6, 12, 36, 24), growth_rate=48, stem_channels=96), num_classes, in_chans, **kwargs)


@register_model(family="densenet", paper=PAPER, year=2017, torchvision="densenet169")
def densenet169(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> DenseNet:
    """Return DenseNet-169 (BC, k = 32): dense blocks of 6, 12, 32, 32 layers."""
    return _densenet(DenseNetConfig((6, 12, 32, 32)), num_classes, in_chans, **kwargs)


@register_model(family="densenet", paper=PAPER, year=2017, torchvision="densenet201")
def densenet201(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> DenseNet:
    """Return DenseNet-201 (BC, k = 32): dense blocks of 6, 12, 48, 32 layers."""
    return _densenet(DenseNetConfig((6, 12, 48, 32)), num_classes, in_chans, **kwargs)


@register_model(family="densenet", paper=PAPER, year=2017, input_size=(3, 32, 32), small_input=True, default_classes=10)
def densenet_bc_100_k12(num_classes: int = 10, in_chans: int = 3, **kwargs: object) -> DenseNet:
    """Return DenseNet-BC-100 (k = 12) for CIFAR: three blocks of (100 - 4) / 6 = 16 layers."""
    config = DenseNetConfig((16, 16, 16), growth_rate=12, stem_channels=24, stem=Stem.CIFAR)
    return _densenet(config, num_classes, in_chans, **kwargs)
