"""EfficientNet B0..B7 (Tan & Le 2019): one searched baseline scaled in depth, width and resolution.

B0 (the paper's Table 1) is a stack of MBConv blocks: MobileNet v2's inverted residual with
squeeze-excitation, SiLU ("swish") and stochastic depth. Compound scaling (Eq. 3) grows depth by
alpha^phi, width by beta^phi and resolution by gamma^phi with alpha = 1.2, beta = 1.1,
gamma = 1.15; the published B1..B7 round these by hand, so they carry their own coefficients.
Layers are registered in torchvision's order so `load_torchvision_state_dict` maps its weights
one to one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.mobilenet import init_weights
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct, SqueezeExcitation
from cnnlab.nn.mobile import InvertedResidual, make_divisible

PAPER = "Tan, Le: EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"


class MBConvStage(NamedTuple):
    """One row of the paper's Table 1 (B0), before scaling."""

    expansion: int  # MBConv1 or MBConv6: expanded channels = expansion x input channels
    kernel: int  # depth-wise kernel side
    stride: int  # stride of the stage's first block
    channels: int  # output channels
    repeats: int  # blocks in the stage


B0_STAGES = (
    MBConvStage(1, 3, 1, 16, 1), MBConvStage(6, 3, 2, 24, 2), MBConvStage(6, 5, 2, 40, 2),
    MBConvStage(6, 3, 2, 80, 3), MBConvStage(6, 5, 1, 112, 3), MBConvStage(6, 5, 2, 192, 4),
    MBConvStage(6, 3, 1, 320, 1),
)


@dataclass(frozen=True)
class EfficientNetConfig:
    """One EfficientNet: B0's stages and the scaling coefficients applied to them."""

    width_mult: float  # channels of every layer times this, rounded by make_divisible
    depth_mult: float  # blocks per stage times this, rounded up
    resolution: int  # input side (pixels) the variant is designed for
    dropout: float  # before the classifier
    stochastic_depth_prob: float = 0.2  # drop rate grows linearly over blocks from 0 towards this
    norm_eps: float = 1e-5  # torchvision: PyTorch's default for B0..B4, TensorFlow's 1e-3 for B5..B7
    norm_momentum: float = 0.1  # 0.01 (TensorFlow's decay 0.99) where torchvision ported B5..B7
    stem_channels: int = 32  # 3x3 stride-2 conv
    head_channels: int = 1280  # 1x1 conv before the pool
    stages: tuple[MBConvStage, ...] = B0_STAGES


def compound_scaling(phi: float, alpha: float = 1.2, beta: float = 1.1, gamma: float = 1.15) -> EfficientNetConfig:
    """Return B0 scaled by depth alpha^phi, width beta^phi, resolution gamma^phi (Eq. 3).

    alpha beta^2 gamma^2 ~ 2, so each unit of phi about doubles the FLOPs. The resolution is
    224 gamma^phi rounded to the nearest multiple of 8 (phi = 1 gives 256; the published B1 uses 240
    and B2 260). Dropout 0.2 and BN settings are B0's.
    """
    resolution = 8 * round(224 * gamma**phi / 8)
    return EfficientNetConfig(width_mult=beta**phi, depth_mult=alpha**phi, resolution=resolution, dropout=0.2)


class EfficientNet(Classifier):
    """3x3 stem, seven MBConv stages, 1x1 head conv, global average pool, dropout, linear."""

    classifier_path = "classifier.1"
    stage_names = tuple(f"features.{i}" for i in range(1, 9))  # Table 1's stages 2..9 (8: head conv)

    def __init__(self, config: EfficientNetConfig, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.config = config
        self.num_classes = num_classes
        norm_layer = partial(nn.BatchNorm2d, eps=config.norm_eps, momentum=config.norm_momentum)
        channels = make_divisible(config.stem_channels * config.width_mult)
        layers: list[nn.Module] = [
            ConvNormAct(in_chans, channels, 3, stride=2, padding=1, norm_layer=norm_layer, act_layer=partial(nn.SiLU, inplace=True))
        ]
        depths = [math.ceil(stage.repeats * config.depth_mult) for stage in config.stages]
        block_index = 0
        for stage, depth in zip(config.stages, depths, strict=True):
            out_channels = make_divisible(stage.channels * config.width_mult)
            blocks = []
            for repeat in range(depth):
                # Stochastic depth (Huang et al. 2016) grows linearly with the block index, as
                # the reference code: rate idx / total, so the last block is just below the max.
                drop = config.stochastic_depth_prob * block_index / sum(depths)
                # SE squeezes to a quarter of the block's *input* channels (reference code).
                se_layer = partial(SqueezeExcitation, reduced_channels=max(1, channels // 4), act_layer=partial(nn.SiLU, inplace=True))
                blocks.append(InvertedResidual(
                    channels, out_channels, make_divisible(channels * stage.expansion),
                    kernel_size=stage.kernel, stride=stage.stride if repeat == 0 else 1,
                    act_layer=nn.SiLU, norm_layer=norm_layer, se_layer=se_layer, drop_path=drop,
                ))
                channels = out_channels
                block_index += 1
            layers.append(nn.Sequential(*blocks))
        self.num_features = make_divisible(config.head_channels * config.width_mult)
        layers.append(ConvNormAct(channels, self.num_features, 1, padding=0, norm_layer=norm_layer, act_layer=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(self.num_features, num_classes))
        init_weights(self, _uniform_by_outputs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the head conv's map (B, num_features, H/32, W/32)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the pooled head map."""
        x = self.avgpool(x).flatten(1)  # (B, num_features)
        return self.classifier(x)


def _uniform_by_outputs(layer: nn.Linear) -> None:
    # The reference code's dense initialiser: U(-1/sqrt(out), 1/sqrt(out)).
    bound = 1.0 / math.sqrt(layer.out_features)
    nn.init.uniform_(layer.weight, -bound, bound)


def efficientnet(phi: float, num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> EfficientNet:
    """Return B0 compound-scaled by `phi` (config fields such as dropout= override)."""
    return EfficientNet(replace(compound_scaling(phi), **kwargs), num_classes=num_classes, in_chans=in_chans)


# The published (width, depth, resolution, dropout) of B0..B7 (the reference code's table).
_TF_NORM = {"norm_eps": 1e-3, "norm_momentum": 0.01}
B_CONFIGS = {
    "efficientnet_b0": EfficientNetConfig(1.0, 1.0, 224, 0.2),
    "efficientnet_b1": EfficientNetConfig(1.0, 1.1, 240, 0.2),
    "efficientnet_b2": EfficientNetConfig(1.1, 1.2, 260, 0.3),
    "efficientnet_b3": EfficientNetConfig(1.2, 1.4, 300, 0.3),
    "efficientnet_b4": EfficientNetConfig(1.4, 1.8, 380, 0.4),
    "efficientnet_b5": EfficientNetConfig(1.6, 2.2, 456, 0.4, **_TF_NORM),
    "efficientnet_b6": EfficientNetConfig(1.8, 2.6, 528, 0.5, **_TF_NORM),
    "efficientnet_b7": EfficientNetConfig(2.0, 3.1, 600, 0.5, **_TF_NORM),
}


def _build(name: str, num_classes: int, in_chans: int, **kwargs: object) -> EfficientNet:
    return EfficientNet(replace(B_CONFIGS[name], **kwargs), num_classes=num_classes, in_chans=in_chans)


def _register(name: str, input_side: int | None = None) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    # The registry's default input is the variant's resolution; torchvision has every variant.
    side = input_side or B_CONFIGS[name].resolution
    return register_model(family="efficientnet", paper=PAPER, year=2019, input_size=(3, side, side), torchvision=name)


@_register("efficientnet_b0")
def efficientnet_b0(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> EfficientNet:
    """Return EfficientNet-B0: the searched baseline, 224 px."""
    return _build("efficientnet_b0", num_classes, in_chans, **kwargs)


@_register("efficientnet_b1")
def efficientnet_b1(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> EfficientNet:
    """Return EfficientNet-B1: depth 1.1, 240 px."""
    return _build("efficientnet_b1", num_classes, in_chans, **kwargs)


# torchvision's B2 weights are evaluated at 288 px (their _ops 1.088 G is counted there), not the
# paper's 260; the registry's default input follows the weights, the config keeps the paper's.
@_register("efficientnet_b2", input_side=288)
def efficientnet_b2(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> EfficientNet:
    """Return EfficientNet-B2: width 1.1, depth 1.2, 260 px in the paper."""
    return _build("efficientnet_b2", num_classes, in_chans, **kwargs)


@_register("efficientnet_b3")
def efficientnet_b3(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> EfficientNet:
    """Return EfficientNet-B3: width 1.2, depth 1.4, 300 px."""
    return _build("efficientnet_b3", num_classes, in_chans, **kwargs)


@_register("efficientnet_b4")
def efficientnet_b4(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> EfficientNet:
    """Return EfficientNet-B4: width 1.4, depth 1.8, 380 px."""
    return _build("efficientnet_b4", num_classes, in_chans, **kwargs)


@_register("efficientnet_b5")
def efficientnet_b5(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> EfficientNet:
    """Return EfficientNet-B5: width 1.6, depth 2.2, 456 px, BN eps 1e-3."""
    return _build("efficientnet_b5", num_classes, in_chans, **kwargs)


@_register("efficientnet_b6")
def efficientnet_b6(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> EfficientNet:
    """Return EfficientNet-B6: width 1.8, depth 2.6, 528 px, BN eps 1e-3."""
    return _build("efficientnet_b6", num_classes, in_chans, **kwargs)


@_register("efficientnet_b7")
def efficientnet_b7(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> EfficientNet:
    """Return EfficientNet-B7: width 2.0, depth 3.1, 600 px, BN eps 1e-3."""
    return _build("efficientnet_b7", num_classes, in_chans, **kwargs)
