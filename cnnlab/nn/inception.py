"""Inception modules: GoogLeNet's (Szegedy et al. 2015, "Going Deeper with Convolutions", Fig. 2b)
and Inception v3's (Szegedy, Vanhoucke, Ioffe, Shlens, Wojna 2016, "Rethinking the Inception
Architecture for Computer Vision", Figs. 5-7 and 10).

Built as torchvision builds them (a port of TF-slim): bias-free convs, BatchNorm with eps 0.001,
ReLU, and branches registered in torchvision's order so its weights map one to one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from cnnlab.arithmetic import PaddingPolicy
from cnnlab.nn.conv import ConvNormAct


class BasicConv2d(ConvNormAct):
    """Conv (no bias) -> BatchNorm (eps 0.001, TF-slim's value) -> ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int = 1,
        padding: int | PaddingPolicy = PaddingPolicy.SAME,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            norm_layer=partial(nn.BatchNorm2d, eps=1e-3),
            act_layer=partial(nn.ReLU, inplace=True),
        )


class Concat(nn.ModuleDict):
    """Parallel branches applied to one input, outputs stacked along channels (an Inception module)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the branch outputs concatenated: (B, sum of branch channels, H', W')."""
        return torch.cat([branch(x) for branch in self.values()], dim=1)


@dataclass(frozen=True)
class InceptionSpec:
    """One row of GoogLeNet's Table 1: the output channels of each branch of one module."""

    in_channels: int
    conv1x1: int  # "#1x1"
    reduce3x3: int  # "#3x3 reduce"
    conv3x3: int  # "#3x3"
    reduce5x5: int  # "#5x5 reduce"
    conv5x5: int  # "#5x5" (a 3x3 conv in torchvision, see inception_v1_module)
    pool_proj: int  # "pool proj": 1x1 conv after the 3x3 max-pool

    @property
    def out_channels(self) -> int:
        """Return the channels of the concatenated output."""
        return self.conv1x1 + self.conv3x3 + self.conv5x5 + self.pool_proj


def inception_v1_module(spec: InceptionSpec) -> Concat:
    """Return the Inception module of Fig. 2(b): 1x1, 1x1-3x3, 1x1-"5x5" and pool-1x1 branches."""
    pool = nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True)
    return Concat({
        "branch1": BasicConv2d(spec.in_channels, spec.conv1x1, 1),
        "branch2": nn.Sequential(BasicConv2d(spec.in_channels, spec.reduce3x3, 1), BasicConv2d(spec.reduce3x3, spec.conv3x3, 3)),
        # The paper's 5x5 conv is a 3x3 in torchvision's port (pytorch/vision#906); kept for its weights.
        "branch3": nn.Sequential(BasicConv2d(spec.in_channels, spec.reduce5x5, 1), BasicConv2d(spec.reduce5x5, spec.conv5x5, 3)),
        "branch4": nn.Sequential(pool, BasicConv2d(spec.in_channels, spec.pool_proj, 1)),
    })


VALID = PaddingPolicy.VALID  # the stride-2 convs of the stem and grid reductions do not pad


def _pool_branch(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1), BasicConv2d(in_channels, out_channels, 1))


def _split_1x3_3x1(channels: int) -> Concat:
    return Concat({"conv1x3": BasicConv2d(channels, channels, (1, 3)), "conv3x1": BasicConv2d(channels, channels, (3, 1))})


def inception_a(in_channels: int, pool_features: int) -> Concat:
    """Return a 35x35 module (Fig. 5); TF-slim, and so torchvision, keep a 5x5 branch beside 3x3-3x3."""
    return Concat({
        "branch1x1": BasicConv2d(in_channels, 64, 1),
        "branch5x5": nn.Sequential(BasicConv2d(in_channels, 48, 1), BasicConv2d(48, 64, 5)),
        "branch3x3dbl": nn.Sequential(BasicConv2d(in_channels, 64, 1), BasicConv2d(64, 96, 3), BasicConv2d(96, 96, 3)),
        "branch_pool": _pool_branch(in_channels, pool_features),
    })


def reduction_a(in_channels: int) -> Concat:
    """Return the 35 -> 17 grid reduction (Fig. 10): stride-2 conv branches beside a stride-2 max-pool."""
    return Concat({
        "branch3x3": BasicConv2d(in_channels, 384, 3, stride=2, padding=VALID),
        "branch3x3dbl": nn.Sequential(BasicConv2d(in_channels, 64, 1), BasicConv2d(64, 96, 3), BasicConv2d(96, 96, 3, stride=2, padding=VALID)),
        "branch_pool": nn.MaxPool2d(3, stride=2),
    })


def inception_c(in_channels: int, c7: int) -> Concat:
    """Return a 17x17 module (Fig. 6, n = 7): each 7x7 conv factorised into 1x7 then 7x1."""
    return Concat({
        "branch1x1": BasicConv2d(in_channels, 192, 1),
        "branch7x7": nn.Sequential(BasicConv2d(in_channels, c7, 1), BasicConv2d(c7, c7, (1, 7)), BasicConv2d(c7, 192, (7, 1))),
        "branch7x7dbl": nn.Sequential(
            BasicConv2d(in_channels, c7, 1),
            BasicConv2d(c7, c7, (7, 1)),
            BasicConv2d(c7, c7, (1, 7)),
            BasicConv2d(c7, c7, (7, 1)),
            BasicConv2d(c7, 192, (1, 7)),
        ),
        "branch_pool": _pool_branch(in_channels, 192),
    })


def reduction_b(in_channels: int) -> Concat:
    """Return the 17 -> 8 grid reduction: 1x1-3x3/2 and 1x1-1x7-7x1-3x3/2 beside a 3x3/2 max-pool."""
    return Concat({
        "branch3x3": nn.Sequential(BasicConv2d(in_channels, 192, 1), BasicConv2d(192, 320, 3, stride=2, padding=VALID)),
        "branch7x7x3": nn.Sequential(
            BasicConv2d(in_channels, 192, 1),
            BasicConv2d(192, 192, (1, 7)),
            BasicConv2d(192, 192, (7, 1)),
            BasicConv2d(192, 192, 3, stride=2, padding=VALID),
        ),
        "branch_pool": nn.MaxPool2d(3, stride=2),
    })


def inception_e(in_channels: int) -> Concat:
    """Return an 8x8 module with expanded filter bank outputs (Fig. 7): 1x3 and 3x1 side by side."""
    return Concat({
        "branch1x1": BasicConv2d(in_channels, 320, 1),
        "branch3x3": nn.Sequential(BasicConv2d(in_channels, 384, 1), _split_1x3_3x1(384)),
        "branch3x3dbl": nn.Sequential(BasicConv2d(in_channels, 448, 1), BasicConv2d(448, 384, 3), _split_1x3_3x1(384)),
        "branch_pool": _pool_branch(in_channels, 192),
    })
