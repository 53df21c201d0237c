"""MobileNet v1, v2 and v3: depth-wise separable convs, then inverted residuals, then searched ones.

v1 (Howard et al. 2017) stacks depth-wise separable convs with BN + ReLU after both halves (Table
1) and scales every width by a multiplier alpha (Sec. 3.3). v2 (Sandler et al. 2018) wraps the
depth-wise conv in an inverted residual: expand 1x1, depth-wise 3x3, linear 1x1 projection with
no activation, identity shortcut between the narrow ends (Table 2). v3 (Howard et al. 2019) adds
squeeze-excitation with a hard-sigmoid gate and the hard-swish activation (Tables 1 and 2).
v2 and v3 register their layers in torchvision's order so `load_torchvision_state_dict` maps
its weights one to one; v1 follows timm's `mobilenetv1_100` (no torchvision model).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct, DepthwiseSeparableConv, SqueezeExcitation
from cnnlab.nn.mobile import InvertedResidual, LayerFactory, make_divisible

PAPER_V1 = "Howard et al.: MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications"
PAPER_V2 = "Sandler, Howard, Zhu, Zhmoginov, Chen: MobileNetV2: Inverted Residuals and Linear Bottlenecks"
PAPER_V3 = "Howard et al.: Searching for MobileNetV3"


def stage_ends(strides: list[int]) -> tuple[str, ...]:
    """Return `features.i` for each layer i that is the last one before a stride-2 layer, and the last."""
    return tuple(
        f"features.{i}" for i in range(len(strides)) if i == len(strides) - 1 or strides[i + 1] > 1
    )


def init_weights(model: nn.Module, linear_init: Callable[[nn.Linear], None]) -> None:
    """Initialise convs Kaiming-normal (fan-out), norms to the identity and linears by `linear_init`."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            linear_init(module)
            nn.init.zeros_(module.bias)


def _normal_001(layer: nn.Linear) -> None:
    nn.init.normal_(layer.weight, 0.0, 0.01)


class MobileNet(Classifier):
    """`features` (stem, blocks, last conv), global average pool, `classifier`: v2's and v3's layout."""

    classifier_path = "classifier.1"

    def __init__(self, features: list[nn.Module], strides: list[int], classifier: nn.Sequential, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(*features)
        self.num_features = self.features[-1].conv.out_channels  # the last 1x1 ConvNormAct
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = classifier
        self.classifier_path = f"classifier.{len(classifier) - 1}"
        self.stage_names = stage_ends(strides)
        init_weights(self, _normal_001)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last conv's map (B, num_features, H/32, W/32)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the pooled map."""
        x = self.avgpool(x).flatten(1)  # (B, num_features)
        return self.classifier(x)


# --- MobileNet v1 ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MobileNetV1Config:
    """MobileNet v1's Table 1, grouped into stages that each start with the stride-2 layer."""

    width_mult: float = 1.0  # alpha of Sec. 3.3: every width times alpha, to a multiple of 8 (timm)
    stem_channels: int = 32  # the full 3x3 stride-2 conv before the separable convs
    # (output channels, separable convs, stride of the first); Table 1's last "dw s2" is a
    # typo: its input and output are both 7x7, so stride 1.
    stages: tuple[tuple[int, int, int], ...] = ((64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 2))


class MobileNetV1(Classifier):
    """3x3 stem, five stages of depth-wise separable convs (BN + ReLU after each half), pool, linear."""

    classifier_path = "fc"
    stage_names = tuple(f"features.stage{i}" for i in range(1, 6))

    def __init__(self, config: MobileNetV1Config, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        channels = make_divisible(config.stem_channels * config.width_mult)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["stem"] = ConvNormAct(in_chans, channels, 3, stride=2, padding=1)
        for index, (width, repeats, stride) in enumerate(config.stages, 1):
            out_channels = make_divisible(width * config.width_mult)
            blocks = []
            for repeat in range(repeats):
                blocks.append(DepthwiseSeparableConv(channels, out_channels, 3, stride=stride if repeat == 0 else 1, padding=1))
                channels = out_channels
            layers[f"stage{index}"] = nn.Sequential(*blocks)
        self.features = nn.Sequential(layers)
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        init_weights(self, _normal_001)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the stage-5 map (B, 1024 alpha, H/32, W/32)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the pooled stage-5 map."""
        x = self.avgpool(x).flatten(1)  # (B, num_features)
        return self.fc(x)


@register_model(family="mobilenet", paper=PAPER_V1, year=2017)
def mobilenet_v1(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> MobileNetV1:
    """Return MobileNet v1 (width_mult=1.0 by default; pass width_mult=0.75, 0.5, 0.25...)."""
    return MobileNetV1(replace(MobileNetV1Config(), **kwargs), num_classes=num_classes, in_chans=in_chans)


@register_model(family="mobilenet", paper=PAPER_V1, year=2017)
def mobilenet_v1_050(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> MobileNetV1:
    """Return MobileNet v1 at width multiplier 0.5 (the paper's "0.50 MobileNet-224")."""
    config = replace(MobileNetV1Config(width_mult=0.5), **kwargs)
    return MobileNetV1(config, num_classes=num_classes, in_chans=in_chans)


# --- MobileNet v2 ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MobileNetV2Config:
    """MobileNet v2's Table 2 and its width multiplier."""

    width_mult: float = 1.0  # channels times this, rounded by make_divisible
    stem_channels: int = 32  # 3x3 stride-2 conv
    last_channels: int = 1280  # 1x1 conv before the pool; never narrowed below 1280 (Sec. 6.1)
    # (expansion t, output channels c, repeats n, stride s of the first) per Table 2 row
    bottlenecks: tuple[tuple[int, int, int, int], ...] = (
        (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
    )
    dropout: float = 0.2  # before the classifier, as torchvision trains it


def build_mobilenet_v2(config: MobileNetV2Config, num_classes: int = 1000, in_chans: int = 3) -> MobileNet:
    """Return MobileNet v2: 3x3 stem, 17 inverted residuals with ReLU6, 1x1 conv, dropout, linear."""
    channels = make_divisible(config.stem_channels * config.width_mult)
    features: list[nn.Module] = [ConvNormAct(in_chans, channels, 3, stride=2, padding=1, act_layer=nn.ReLU6)]
    strides = [2]
    for expansion, width, repeats, first_stride in config.bottlenecks:
        out_channels = make_divisible(width * config.width_mult)
        for repeat in range(repeats):
            stride = first_stride if repeat == 0 else 1
            hidden = int(round(channels * expansion))
            features.append(InvertedResidual(channels, out_channels, hidden, stride=stride, act_layer=nn.ReLU6))
            strides.append(stride)
            channels = out_channels
    last = make_divisible(config.last_channels * max(1.0, config.width_mult))
    features.append(ConvNormAct(channels, last, 1, padding=0, act_layer=nn.ReLU6))
    strides.append(1)
    classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(last, num_classes))
    return MobileNet(features, strides, classifier, num_classes)


@register_model(family="mobilenet", paper=PAPER_V2, year=2018, torchvision="mobilenet_v2")
def mobilenet_v2(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> MobileNet:
    """Return MobileNet v2 at width 1.0 (width_mult= and dropout= override)."""
    return build_mobilenet_v2(replace(MobileNetV2Config(), **kwargs), num_classes, in_chans)


# --- MobileNet v3 ------------------------------------------------------------------------------


class Bneck(NamedTuple):
    """One row of MobileNet v3's Tables 1 and 2."""

    kernel: int  # depth-wise kernel side
    expanded: int  # "exp size": channels of the depth-wise conv
    out: int  # "#out": channels after the projection
    se: bool  # squeeze-excitation after the depth-wise conv
    act: LayerFactory  # nn.ReLU ("RE") or nn.Hardswish ("HS")
    stride: int  # stride of the depth-wise conv


RE, HS = nn.ReLU, nn.Hardswish
V3_LARGE = (
    Bneck(3, 16, 16, False, RE, 1), Bneck(3, 64, 24, False, RE, 2), Bneck(3, 72, 24, False, RE, 1),
    Bneck(5, 72, 40, True, RE, 2), Bneck(5, 120, 40, True, RE, 1), Bneck(5, 120, 40, True, RE, 1),
    Bneck(3, 240, 80, False, HS, 2), Bneck(3, 200, 80, False, HS, 1), Bneck(3, 184, 80, False, HS, 1),
    Bneck(3, 184, 80, False, HS, 1), Bneck(3, 480, 112, True, HS, 1), Bneck(3, 672, 112, True, HS, 1),
    Bneck(5, 672, 160, True, HS, 2), Bneck(5, 960, 160, True, HS, 1), Bneck(5, 960, 160, True, HS, 1),
)
V3_SMALL = (
    Bneck(3, 16, 16, True, RE, 2), Bneck(3, 72, 24, False, RE, 2), Bneck(3, 88, 24, False, RE, 1),
    Bneck(5, 96, 40, True, HS, 2), Bneck(5, 240, 40, True, HS, 1), Bneck(5, 240, 40, True, HS, 1),
    Bneck(5, 120, 48, True, HS, 1), Bneck(5, 144, 48, True, HS, 1), Bneck(5, 288, 96, True, HS, 2),
    Bneck(5, 576, 96, True, HS, 1), Bneck(5, 576, 96, True, HS, 1),
)


@dataclass(frozen=True)
class MobileNetV3Config:
    """One MobileNet v3 variant: its bneck table and head widths."""

    bnecks: tuple[Bneck, ...]  # Table 1 (large) or Table 2 (small)
    last_channels: int  # width of the hidden layer of the head (1280 large, 1024 small)
    stem_channels: int = 16  # 3x3 stride-2 conv with hard-swish
    width_mult: float = 1.0  # channels times this, rounded by make_divisible
    dropout: float = 0.2  # in the head, as torchvision trains it
    norm_eps: float = 1e-3  # TensorFlow's BN settings, kept by torchvision's weights
    norm_momentum: float = 0.01  # PyTorch's momentum = 1 - TensorFlow's decay 0.99


def build_mobilenet_v3(config: MobileNetV3Config, num_classes: int = 1000, in_chans: int = 3) -> MobileNet:
    """Return MobileNet v3: stem, bnecks, 1x1 conv to 6x the last width, pool, two linears."""
    norm_layer = partial(nn.BatchNorm2d, eps=config.norm_eps, momentum=config.norm_momentum)
    channels = make_divisible(config.stem_channels * config.width_mult)
    features: list[nn.Module] = [
        ConvNormAct(in_chans, channels, 3, stride=2, padding=1, norm_layer=norm_layer, act_layer=nn.Hardswish)
    ]
    strides = [2]
    for row in config.bnecks:
        expanded = make_divisible(row.expanded * config.width_mult)
        out_channels = make_divisible(row.out * config.width_mult)
        # SE squeezes to a quarter of the expanded width, rounded to 8; the gate is a hard
        # sigmoid, cheaper than the sigmoid on mobile hardware (Sec. 5.2 and 5.3).
        se_layer = None
        if row.se:
            reduced = make_divisible(expanded // 4)
            se_layer = partial(SqueezeExcitation, reduced_channels=reduced, act_layer=nn.ReLU, gate_layer=nn.Hardsigmoid)
        features.append(InvertedResidual(
            channels, out_channels, expanded, kernel_size=row.kernel, stride=row.stride,
            act_layer=row.act, norm_layer=norm_layer, se_layer=se_layer,
        ))
        strides.append(row.stride)
        channels = out_channels
    # The last stage is redesigned (Sec. 5.1): 1x1 conv to 6x channels, then pool, then a
    # hidden linear layer (a 1x1 conv on the pooled map in the paper) without BN.
    features.append(ConvNormAct(channels, 6 * channels, 1, padding=0, norm_layer=norm_layer, act_layer=nn.Hardswish))
    strides.append(1)
    last = make_divisible(config.last_channels * config.width_mult)
    classifier = nn.Sequential(
        nn.Linear(6 * channels, last), nn.Hardswish(inplace=True), nn.Dropout(config.dropout), nn.Linear(last, num_classes)
    )
    return MobileNet(features, strides, classifier, num_classes)


@register_model(family="mobilenet", paper=PAPER_V3, year=2019, torchvision="mobilenet_v3_large")
def mobilenet_v3_large(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> MobileNet:
    """Return MobileNet v3-Large (Table 1)."""
    return build_mobilenet_v3(replace(MobileNetV3Config(V3_LARGE, 1280), **kwargs), num_classes, in_chans)


@register_model(family="mobilenet", paper=PAPER_V3, year=2019, torchvision="mobilenet_v3_small")
def mobilenet_v3_small(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> MobileNet:
    """Return MobileNet v3-Small (Table 2)."""
    return build_mobilenet_v3(replace(MobileNetV3Config(V3_SMALL, 1024), **kwargs), num_classes, in_chans)
