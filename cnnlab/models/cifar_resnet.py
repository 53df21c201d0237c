"""ResNets for 32x32 images: He et al.'s CIFAR-10 nets, pre-activation ResNets and WRN-28-10.

- resnet20 .. resnet110 (He et al. 2016a, Sec. 4.2): a 3x3 conv with 16 maps, three stages of n
  basic blocks at 16, 32, 64 channels (6n + 2 weighted layers), global average pool, linear 10.
  Shortcut option A is parameter-free (stride-2 subsampling, zero-padded extra channels);
  option B projects with a 1x1 conv + BN only where the shape changes.
- plain20 / plain56: the same networks without shortcuts, the plain nets of Fig. 1 (degradation).
- preact_resnet18 / preact_resnet164 (He et al. 2016b): BN-ReLU before every conv (Fig. 4e),
  and one BN-ReLU after the last block, since the sum leaving it was never normalised.
- wrn28_10 (Zagoruyko & Komodakis 2016): pre-activation basic blocks ten times as wide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import torch
from torch import nn

from cnnlab.models.base import Classifier, init_conv_bn
from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct, conv
from cnnlab.nn.factory import LayerFactory
from cnnlab.nn.residual import CifarBasicBlock, PreActBlock, Shortcut, norm_act
from cnnlab.nn.residual import (
    ZeroPadShortcut as ZeroPadShortcut,  # re-exported: the option-A shortcut
)

PAPER = "He, Zhang, Ren, Sun: Deep Residual Learning for Image Recognition"
PREACT_PAPER = "He, Zhang, Ren, Sun: Identity Mappings in Deep Residual Networks"
WRN_PAPER = "Zagoruyko, Komodakis: Wide Residual Networks"


class Block(StrEnum):
    """The residual unit a network is made of."""

    BASIC = "basic"  # conv-BN-ReLU, conv-BN, add, ReLU (He et al. 2016a, Fig. 2)
    PREACT = "preact"  # (BN-ReLU-conv3x3) x 2, add (He et al. 2016b, Fig. 4e)
    PREACT_BOTTLENECK = "preact_bottleneck"  # BN-ReLU-conv 1x1, 3x3, 1x1 (x4 expansion), add


@dataclass(frozen=True)
class CifarResNetConfig:
    """One CIFAR ResNet: block type, blocks and output channels per stage."""

    block: Block
    depths: tuple[int, ...]  # blocks per stage; each stage after the first halves H and W
    widths: tuple[int, ...]  # output channels per stage (a bottleneck's 3x3 has a quarter of it)
    stem_width: int = 16  # maps of the first 3x3 conv
    shortcut: Shortcut = Shortcut.A  # post-activation blocks only; pre-activation ones project
    drop_rate: float = 0.0  # dropout between the two convs of a pre-activation basic block (WRN)
    norm_layer: LayerFactory = nn.BatchNorm2d  # post-activation blocks and their stem
    act_layer: LayerFactory = nn.ReLU


class CifarResNet(Classifier):
    """3x3 stem, stages of residual blocks (stride 2 after the first), global average pool, linear."""

    classifier_path = "fc"

    def __init__(self, config: CifarResNetConfig, num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        preact = config.block is not Block.BASIC
        self.num_classes = num_classes
        # A pre-activation net normalises at the start of each block, so its stem is a bare conv.
        if preact:
            self.stem: nn.Module = conv(in_chans, config.stem_width, 3, padding=1, bias=False)
        else:
            self.stem = ConvNormAct(in_chans, config.stem_width, 3, padding=1, norm_layer=config.norm_layer,
                                    act_layer=config.act_layer)
        self.stages = nn.Sequential()
        channels = config.stem_width
        for index, (depth, width) in enumerate(zip(config.depths, config.widths, strict=True)):
            blocks = []
            for position in range(depth):
                stride = 2 if index > 0 and position == 0 else 1
                blocks.append(self._block(config, channels, width, stride))
                channels = width
            self.stages.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.stage_names = tuple(f"stages.layer{i + 1}" for i in range(len(config.depths)))
        # 2016b, Sec. 4.1: the last block's sum reaches the pool through one more BN-ReLU.
        self.final = nn.Sequential(*norm_act(channels)) if preact else nn.Identity()
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        self._init_weights()

    @staticmethod
    def _block(config: CifarResNetConfig, in_channels: int, out_channels: int, stride: int) -> nn.Module:
        if config.block is Block.BASIC:
            return CifarBasicBlock(in_channels, out_channels, stride, config.shortcut, config.norm_layer, config.act_layer)
        bottleneck = config.block is Block.PREACT_BOTTLENECK
        return PreActBlock(in_channels, out_channels, stride, bottleneck=bottleneck, drop_rate=config.drop_rate)

    def _init_weights(self) -> None:
        # He et al. 2015 initialisation, as both papers use; BN starts as the identity.
        init_conv_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last stage's map (B, num_features, H / 2^(stages-1), W / 2^(stages-1))."""
        x = self.stem(x)  # (B, stem_width, H, W)
        x = self.stages(x)
        return self.final(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the globally average-pooled map."""
        x = self.avgpool(x).flatten(1)  # (B, num_features)
        return self.fc(x)


def _register(paper: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Return `register_model` for a 2016 variant trained on 32x32 images of 10 classes."""
    return register_model(
        family="cifar_resnet", paper=paper, year=2016, input_size=(3, 32, 32), small_input=True, default_classes=10
    )


def _he_cifar(n: int, shortcut: Shortcut | str, num_classes: int, in_chans: int, **kwargs: object) -> CifarResNet:
    """Return He et al.'s 6n+2-layer CIFAR ResNet."""
    layers = {key: kwargs.pop(key) for key in ("norm_layer", "act_layer") if key in kwargs}
    config = CifarResNetConfig(Block.BASIC, (n, n, n), (16, 32, 64), shortcut=Shortcut(shortcut), **layers)
    return CifarResNet(config, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(PAPER)
def resnet20(num_classes: int = 10, in_chans: int = 3, shortcut: Literal["A", "B"] = "A", **kwargs: object) -> CifarResNet:
    """Return ResNet-20 for CIFAR (n = 3)."""
    return _he_cifar(3, shortcut, num_classes, in_chans, **kwargs)


@_register(PAPER)
def resnet32(num_classes: int = 10, in_chans: int = 3, shortcut: Literal["A", "B"] = "A", **kwargs: object) -> CifarResNet:
    """Return ResNet-32 for CIFAR (n = 5)."""
    return _he_cifar(5, shortcut, num_classes, in_chans, **kwargs)


@_register(PAPER)
def resnet44(num_classes: int = 10, in_chans: int = 3, shortcut: Literal["A", "B"] = "A", **kwargs: object) -> CifarResNet:
    """Return ResNet-44 for CIFAR (n = 7)."""
    return _he_cifar(7, shortcut, num_classes, in_chans, **kwargs)


@_register(PAPER)
def resnet56(num_classes: int = 10, in_chans: int = 3, shortcut: Literal["A", "B"] = "A", **kwargs: object) -> CifarResNet:
    """Return ResNet-56 for CIFAR (n = 9)."""
    return _he_cifar(9, shortcut, num_classes, in_chans, **kwargs)


@_register(PAPER)
def resnet110(num_classes: int = 10, in_chans: int = 3, shortcut: Literal["A", "B"] = "A", **kwargs: object) -> CifarResNet:
    """Return ResNet-110 for CIFAR (n = 18)."""
    return _he_cifar(18, shortcut, num_classes, in_chans, **kwargs)


@_register(PREACT_PAPER)
def preact_resnet18(num_classes: int = 10, in_chans: int = 3, **kwargs: object) -> CifarResNet:
    """Return a CIFAR pre-activation ResNet-18: 3x3 stem, basic blocks [2, 2, 2, 2] at 64-512."""
    config = CifarResNetConfig(Block.PREACT, (2, 2, 2, 2), (64, 128, 256, 512), stem_width=64)
    return CifarResNet(config, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(PREACT_PAPER)
def preact_resnet164(num_classes: int = 10, in_chans: int = 3, **kwargs: object) -> CifarResNet:
    """Return pre-activation ResNet-164: 3 x 18 bottlenecks at 16/32/64 x 4 channels (9n + 2, n = 18)."""
    config = CifarResNetConfig(Block.PREACT_BOTTLENECK, (18, 18, 18), (64, 128, 256))
    return CifarResNet(config, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(WRN_PAPER)
def wrn28_10(num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.0, **kwargs: object) -> CifarResNet:
    """Return WRN-28-10: (28 - 4) / 6 = 4 pre-activation blocks per stage at 160, 320, 640 channels."""
    config = CifarResNetConfig(Block.PREACT, (4, 4, 4), (160, 320, 640), drop_rate=drop_rate)
    return CifarResNet(config, num_classes=num_classes, in_chans=in_chans, **kwargs)


@_register(PAPER)
def plain20(num_classes: int = 10, in_chans: int = 3, **kwargs: object) -> CifarResNet:
    """Return the plain 20-layer CIFAR network: ResNet-20 without its shortcuts (He et al. 2016a, Fig. 1)."""
    return _he_cifar(3, Shortcut.NONE, num_classes, in_chans, **kwargs)


@_register(PAPER)
def plain56(num_classes: int = 10, in_chans: int = 3, **kwargs: object) -> CifarResNet:
    """Return the plain 56-layer CIFAR network, whose training error exceeds plain-20's (He et al. 2016a, Fig. 1)."""
    return _he_cifar(9, Shortcut.NONE, num_classes, in_chans, **kwargs)
