"""ResNet (He et al. 2016) for ImageNet, with ResNeXt, Wide ResNet-50-2 and SE-ResNet-50.

Stage plan as in the paper's Table 1; the stride of a down-sampling bottleneck sits on its 3x3
conv ("ResNet v1.5", as torchvision and timm build it). Layers are registered in torchvision's
order so `load_torchvision_state_dict` maps its weights one to one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from cnnlab.models.base import Classifier, init_conv_bn
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct
from cnnlab.nn.factory import LayerFactory
from cnnlab.nn.residual import BasicBlock, Bottleneck

PAPER = "He, Zhang, Ren, Sun: Deep Residual Learning for Image Recognition"


@dataclass(frozen=True)
class ResNetConfig:
    """One ResNet variant: block class, blocks per stage and the bottleneck width rule."""

    block: type[BasicBlock] | type[Bottleneck]  # the network builds each one with explicit keywords
    layers: tuple[int, int, int, int]  # blocks in stages conv2_x .. conv5_x (Table 1)
    groups: int = 1  # ResNeXt cardinality (Xie et al. 2017)
    width_per_group: int = 64  # bottleneck width = planes * width_per_group / 64 * groups
    se_reduction: int | None = None  # Squeeze-and-Excitation after the last conv (Hu et al. 2018)
    norm_layer: LayerFactory = nn.BatchNorm2d  # every normalisation, stem and shortcuts included
    act_layer: LayerFactory = nn.ReLU  # every activation


class ResNet(Classifier):
    """7x7 stem, 3x3 max-pool, four stages (layer1..layer4), global average pool, linear."""

    classifier_path = "fc"
    stage_names = ("layer1", "layer2", "layer3", "layer4")

    def __init__(self, config: ResNetConfig, num_classes: int = 1000, in_chans: int = 3, zero_init_residual: bool = False) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = ConvNormAct(in_chans, 64, 7, stride=2, padding=3, norm_layer=config.norm_layer, act_layer=config.act_layer)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_planes = 64
        stages = []
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), config.layers, strict=True)):
            stages.append(self._stage(config, in_planes, planes, blocks, stride=1 if index == 0 else 2))
            in_planes = planes * config.block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.num_features = in_planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)
        self._init_weights(zero_init_residual)

    @classmethod
    def _stage(cls, config: ResNetConfig, in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        """Return one stage: a first block that may change the shape, then blocks that keep it."""
        out_planes = planes * config.block.expansion
        downsample = None
        if stride != 1 or in_planes != out_planes:  # the shortcut must match the block's output (option B)
            downsample = ConvNormAct(in_planes, out_planes, 1, stride=stride, padding=0,
                                     norm_layer=config.norm_layer, act_layer=None)
        layers = [cls._block(config, in_planes, planes, stride, downsample)]
        layers += [cls._block(config, out_planes, planes, 1, None) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    @staticmethod
    def _block(config: ResNetConfig, in_planes: int, planes: int, stride: int, downsample: nn.Module | None) -> nn.Module:
        """Return one block of the config's class, every choice passed as its own argument."""
        return config.block(
            in_planes, planes, stride=stride, downsample=downsample,
            groups=config.groups, width_per_group=config.width_per_group, se_reduction=config.se_reduction,
            norm_layer=config.norm_layer, act_layer=config.act_layer,
        )

    def _init_weights(self, zero_init_residual: bool) -> None:
        init_conv_bn(self)
        if zero_init_residual:  # Goyal et al. 2017: each block starts as the identity
            for module in self.modules():
                last = getattr(module, "conv3", None) or getattr(module, "conv2", None)
                if isinstance(module, (BasicBlock, Bottleneck)) and last is not None:
                    nn.init.zeros_(last.norm.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the layer4 map (B, 512 * expansion, H/32, W/32)."""
        x = self.stem(x)  # (B, 64, H/2, W/2)
        x = self.maxpool(x)  # (B, 64, H/4, W/4)
        x = self.layer1(x)
        x = self.layer2(x)  # (B, 128 e, H/8, W/8)
        x = self.layer3(x)
        return self.layer4(x)  # (B, 512 e, H/32, W/32)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the pooled layer4 map."""
        x = self.avgpool(x).flatten(1)  # (B, num_features)
        return self.fc(x)


def _resnet(config: ResNetConfig, num_classes: int, in_chans: int, **kwargs: object) -> ResNet:
    # norm_layer / act_layer belong to the config, so they reach every block (torchvision's rule).
    layers = {key: kwargs.pop(key) for key in ("norm_layer", "act_layer") if key in kwargs}
    return ResNet(replace(config, **layers), num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model(family="resnet", paper=PAPER, year=2016, torchvision="resnet18")
def resnet18(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> ResNet:
    """Return ResNet-18: basic blocks [2, 2, 2, 2]."""
    return _resnet(ResNetConfig(BasicBlock, (2, 2, 2, 2)), num_classes, in_chans, **kwargs)


@register_model(family="resnet", paper=PAPER, year=2016, torchvision="resnet34")
def resnet34(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> ResNet:
    """Return ResNet-34: basic blocks [3, 4, 6, 3]."""
    return _resnet(ResNetConfig(BasicBlock, (3, 4, 6, 3)), num_classes, in_chans, **kwargs)


@register_model(family="resnet", paper=PAPER, year=2016, torchvision="resnet50")
def resnet50(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> ResNet:
    """Return ResNet-50: bottlenecks [3, 4, 6, 3]."""
    return _resnet(ResNetConfig(Bottleneck, (3, 4, 6, 3)), num_classes, in_chans, **kwargs)


@register_model(family="resnet", paper=PAPER, year=2016, torchvision="resnet101")
def resnet101(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> ResNet:
    """Return ResNet-101: bottlenecks [3, 4, 23, 3]."""
    return _resnet(ResNetConfig(Bottleneck, (3, 4, 23, 3)), num_classes, in_chans, **kwargs)


@register_model(family="resnet", paper=PAPER, year=2016, torchvision="resnet152")
def resnet152(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> ResNet:
    """Return ResNet-152: bottlenecks [3, 8, 36, 3]."""
    return _resnet(ResNetConfig(Bottleneck, (3, 8, 36, 3)), num_classes, in_chans, **kwargs)


@register_model(family="resnet", paper="Zagoruyko, Komodakis: Wide Residual Networks", year=2016, torchvision="wide_resnet50_2")
def wide_resnet50_2(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> ResNet:
    """Return Wide ResNet-50-2: ResNet-50 with bottlenecks twice as wide."""
    return _resnet(ResNetConfig(Bottleneck, (3, 4, 6, 3), width_per_group=128), num_classes, in_chans, **kwargs)


@register_model(family="resnet", paper="Xie, Girshick, Dollar, Tu, He: Aggregated Residual Transformations (ResNeXt)", year=2017, torchvision="resnext50_32x4d")
def resnext50_32x4d(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> ResNet:
    """Return ResNeXt-50 32x4d: 32 groups of width 4 in each 3x3."""
    return _resnet(ResNetConfig(Bottleneck, (3, 4, 6, 3), groups=32, width_per_group=4), num_classes, in_chans, **kwargs)


@register_model(family="resnet", paper="Hu, Shen, Sun: Squeeze-and-Excitation Networks", year=2018)
def se_resnet50(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> ResNet:
    """Return SE-ResNet-50: ResNet-50 with an SE block (reduction 16) before each residual add."""
    return _resnet(ResNetConfig(Bottleneck, (3, 4, 6, 3), se_reduction=16), num_classes, in_chans, **kwargs)
