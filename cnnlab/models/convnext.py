"""ConvNeXt (Liu et al. 2022): a ResNet modernised step by step towards the Swin Transformer.

Patchify stem (4x4 conv, stride 4), four stages of inverted-bottleneck blocks with a 7x7
depth-wise conv, LayerNorm instead of BatchNorm, GELU, layer scale and stochastic depth, and a
separate LayerNorm + 2x2 stride-2 conv between stages (the paper's Section 2 and Fig. 2).
Layers are registered in torchvision's order so `load_torchvision_state_dict` maps its weights
one to one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import nn

from cnnlab.models.base import Classifier
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct, conv
from cnnlab.nn.convnext import LAYER_NORM_EPS, ConvNeXtBlock, LayerNorm2d

PAPER = "Liu, Mao, Wu, Feichtenhofer, Darrell, Xie: A ConvNet for the 2020s"


@dataclass(frozen=True)
class ConvNeXtConfig:
    """One ConvNeXt variant: blocks and channels per stage, and the two block regularisers."""

    depths: tuple[int, int, int, int]  # blocks per stage; (3, 3, 9, 3) is Swin-T's 1:1:3:1 ratio
    widths: tuple[int, int, int, int]  # channels per stage, doubling as the resolution halves
    stochastic_depth_prob: float = 0.1  # drop rate of the last block; linear in depth from 0
    layer_scale_init: float = 1e-6  # initial per-channel residual scale (Touvron et al. 2021)


class Downsample(nn.Sequential):
    """LayerNorm then a 2x2 stride-2 conv: the separate down-sampling layer of Sec. 2.6."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        # Without this norm the paper reports training diverges (Sec. 2.6).
        self.norm = LayerNorm2d(in_channels, eps=LAYER_NORM_EPS)
        self.conv = conv(in_channels, out_channels, 2, stride=2)


class ConvNeXt(Classifier):
    """Patchify stem, stages 1..4 with down-sampling between, average pool, LayerNorm, linear."""

    classifier_path = "classifier.fc"
    stage_names = ("features.stage1", "features.stage2", "features.stage3", "features.stage4")

    def __init__(self, config: ConvNeXtConfig, num_classes: int = 1000, in_chans: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_features = config.widths[-1]
        norm_layer = partial(LayerNorm2d, eps=LAYER_NORM_EPS)
        total_blocks = sum(config.depths)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        # "Patchify" stem: non-overlapping 4x4 patches, as ViT and Swin embed an image (Sec. 2.2).
        layers["stem"] = ConvNormAct(
            in_chans, config.widths[0], 4, stride=4, padding=0, bias=True,
            norm_layer=norm_layer, act_layer=None,
        )
        block_index = 0
        for stage, (depth, width) in enumerate(zip(config.depths, config.widths, strict=True), 1):
            if stage > 1:
                layers[f"downsample{stage}"] = Downsample(config.widths[stage - 2], width)
            blocks = []
            for _ in range(depth):
                # Stochastic depth rate grows linearly with depth (Huang et al. 2016).
                drop = config.stochastic_depth_prob * block_index / (total_blocks - 1)
                blocks.append(ConvNeXtBlock(width, drop, config.layer_scale_init))
                block_index += 1
            layers[f"stage{stage}"] = nn.Sequential(*blocks)
        self.features = nn.Sequential(layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(OrderedDict(
            norm=norm_layer(self.num_features),
            flatten=nn.Flatten(1),
            fc=nn.Linear(self.num_features, num_classes),
        ))
        self._init_weights()

    def _init_weights(self) -> None:
        # Truncated normal, std 0.02, zero biases: the initialisation of the paper's code.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the stage-4 map (B, widths[3], H/32, W/32)."""
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the stage-4 map: pool, LayerNorm, flatten, linear."""
        x = self.avgpool(x)  # (B, C, 1, 1)
        return self.classifier(x)  # (B, num_classes)


def _convnext(config: ConvNeXtConfig, num_classes: int, in_chans: int, **kwargs: object) -> ConvNeXt:
    # Keyword overrides (stochastic_depth_prob=..., layer_scale_init=...) replace config fields.
    return ConvNeXt(replace(config, **kwargs), num_classes=num_classes, in_chans=in_chans)


@register_model(family="convnext", paper=PAPER, year=2022, torchvision="convnext_tiny")
def convnext_tiny(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> ConvNeXt:
    """Return ConvNeXt-T: depths (3, 3, 9, 3), widths 96..768, stochastic depth 0.1."""
    config = ConvNeXtConfig((3, 3, 9, 3), (96, 192, 384, 768), stochastic_depth_prob=0.1)
    return _convnext(config, num_classes, in_chans, **kwargs)


@register_model(family="convnext", paper=PAPER, year=2022, torchvision="convnext_small")
def convnext_small(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> ConvNeXt:
    """Return ConvNeXt-S: depths (3, 3, 27, 3), widths 96..768, stochastic depth 0.4."""
    config = ConvNeXtConfig((3, 3, 27, 3), (96, 192, 384, 768), stochastic_depth_prob=0.4)
    return _convnext(config, num_classes, in_chans, **kwargs)


@register_model(family="convnext", paper=PAPER, year=2022, torchvision="convnext_base")
def convnext_base(num_classes: int = 1000, in_chans: int = 3, **kwargs: object) -> ConvNeXt:
    """Return ConvNeXt-B: depths (3, 3, 27, 3), widths 128..1024, stochastic depth 0.5."""
    config = ConvNeXtConfig((3, 3, 27, 3), (128, 256, 512, 1024), stochastic_depth_prob=0.5)
    return _convnext(config, num_classes, in_chans, **kwargs)
