"""Residual blocks: ResNet's basic and bottleneck blocks, CIFAR shortcuts and pre-activation units.

- BasicBlock / Bottleneck: He, Zhang, Ren, Sun 2016a, "Deep Residual Learning for Image
  Recognition", Fig. 5; registered in torchvision's order (conv1, conv2[, conv3], se, downsample).
- Shortcut, ZeroPadShortcut, CifarBasicBlock: the CIFAR-10 nets of 2016a, Sec. 4.2, with the
  option-A (parameter-free) or option-B (projection) shortcut of Sec. 3.3.
- PreActBlock: He et al. 2016b, "Identity Mappings in Deep Residual Networks", Fig. 4e, with
  Wide ResNet's dropout between the convs (Zagoruyko & Komodakis 2016, Sec. 2.4).
"""

from __future__ import annotations

from enum import StrEnum

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.nn.attention import SqueezeExcitation
from cnnlab.nn.conv import ConvNormAct, conv
from cnnlab.nn.factory import LayerFactory, build_act


class BasicBlock(nn.Module):
    """Two 3x3 convs and an identity (or 1x1 projection) shortcut (He et al. 2016a, Fig. 5 left)."""

    expansion = 1  # output channels = planes * expansion

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, *,
                 groups: int = 1, width_per_group: int = 64, se_reduction: int | None = None,
                 norm_layer: LayerFactory = nn.BatchNorm2d, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        # Accepted so a network can build either block class with the same keywords; the paper's
        # basic block has no grouped or widened conv, so anything else would be silently ignored.
        if groups != 1 or width_per_group != 64:
            raise ValueError(f"BasicBlock takes groups=1 and width_per_group=64, got {groups} and {width_per_group}")
        self.conv1 = ConvNormAct(in_planes, planes, 3, stride=stride, padding=1, norm_layer=norm_layer, act_layer=act_layer)
        self.conv2 = ConvNormAct(planes, planes, 3, padding=1, norm_layer=norm_layer, act_layer=None)
        self.se = SqueezeExcitation(planes, se_reduction) if se_reduction else None
        self.downsample = downsample
        self.act = build_act(act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return relu(F(x) + shortcut(x))."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv1(x)
        out = self.conv2(out)
        if self.se is not None:
            out = self.se(out)
        return self.act(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand by 4, and a shortcut (2016a, Fig. 5 right)."""

    expansion = 4  # output channels = planes * expansion

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, *,
                 groups: int = 1, width_per_group: int = 64, se_reduction: int | None = None,
                 norm_layer: LayerFactory = nn.BatchNorm2d, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        # groups: ResNeXt cardinality (Xie et al. 2017); width_per_group 128 gives Wide ResNet-50-2.
        width = int(planes * width_per_group / 64) * groups
        self.conv1 = ConvNormAct(in_planes, width, 1, padding=0, norm_layer=norm_layer, act_layer=act_layer)
        self.conv2 = ConvNormAct(width, width, 3, stride=stride, padding=1, groups=groups,
                                 norm_layer=norm_layer, act_layer=act_layer)
        self.conv3 = ConvNormAct(width, planes * self.expansion, 1, padding=0, norm_layer=norm_layer, act_layer=None)
        # Squeeze-and-Excitation rescales the residual before the add (Hu et al. 2018).
        self.se = SqueezeExcitation(planes * self.expansion, se_reduction) if se_reduction else None
        self.downsample = downsample
        self.act = build_act(act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return relu(F(x) + shortcut(x))."""
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv1(x)
        out = self.conv2(out)
        out = self.conv3(out)
        if self.se is not None:
            out = self.se(out)
        return self.act(out + shortcut)


class Shortcut(StrEnum):
    """How a post-activation block's shortcut matches a change of shape (He et al. 2016a, Sec. 3.3)."""

    A = "A"  # identity, subsampled by the stride, extra channels zero: no parameters
    B = "B"  # 1x1 conv + BN where the shape changes, identity elsewhere
    NONE = "none"  # no shortcut at all: the plain network of He et al.'s Fig. 1


class ZeroPadShortcut(nn.Module):
    """Option A: keep every stride-th pixel and append zero channels; no parameters."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x subsampled by the stride, zero-padded to the output channels."""
        x = x[:, :, :: self.stride, :: self.stride]  # (B, C_in, H/s, W/s)
        # The paper does not say where the zeros go; after the input channels is the simplest.
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))  # (B, C_out, H/s, W/s)


class CifarBasicBlock(nn.Module):
    """Two 3x3 conv-BN layers, a ReLU between and after the addition (He et al. 2016a)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, shortcut: Shortcut,
                 norm_layer: LayerFactory = nn.BatchNorm2d, act_layer: LayerFactory = nn.ReLU) -> None:
        super().__init__()
        self.conv1 = ConvNormAct(in_channels, out_channels, 3, stride=stride, padding=1, norm_layer=norm_layer, act_layer=act_layer)
        self.conv2 = ConvNormAct(out_channels, out_channels, 3, padding=1, norm_layer=norm_layer, act_layer=None)
        self.shortcut: nn.Module | None = nn.Identity()
        if shortcut is Shortcut.NONE:
            self.shortcut = None
        elif stride != 1 or in_channels != out_channels:
            if shortcut is Shortcut.A:
                self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)
            else:
                self.shortcut = ConvNormAct(in_channels, out_channels, 1, stride=stride, padding=0,
                                            norm_layer=norm_layer, act_layer=None)
        self.act = build_act(act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return relu(F(x) + shortcut(x)), or relu(F(x)) in a plain network."""
        out = self.conv1(x)
        out = self.conv2(out)
        return self.act(out if self.shortcut is None else out + self.shortcut(x))


def norm_act(channels: int) -> tuple[nn.Module, nn.Module]:
    """Return a fresh (BatchNorm2d, ReLU) pair, the pre-activation of He et al. 2016b."""
    return nn.BatchNorm2d(channels), nn.ReLU(inplace=True)


class PreActBlock(nn.Module):
    """BN-ReLU, then the convs each preceded by BN-ReLU; the sum is left un-normalised (2016b)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, *, bottleneck: bool, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.act = nn.ReLU(inplace=True)
        if bottleneck:  # 1x1 reduce to a quarter, 3x3 (with the stride), 1x1 expand
            mid = out_channels // 4
            self.residual = nn.Sequential(
                conv(in_channels, mid, 1, bias=False),
                *norm_act(mid),
                conv(mid, mid, 3, stride=stride, padding=1, bias=False),
                *norm_act(mid),
                conv(mid, out_channels, 1, bias=False),
            )
        else:  # WRN's dropout sits between the two convs (Zagoruyko & Komodakis, Sec. 2.4)
            self.residual = nn.Sequential(
                conv(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                *norm_act(out_channels),
                nn.Dropout(drop_rate),
                conv(out_channels, out_channels, 3, padding=1, bias=False),
            )
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = conv(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return F(BN-ReLU(x)) + shortcut(x), with no activation after the addition."""
        out = self.act(self.norm(x))
        # A projection takes the pre-activated input, as in the authors' code (2016b, WRN).
        shortcut = x if self.shortcut is None else self.shortcut(out)
        return self.residual(out) + shortcut
