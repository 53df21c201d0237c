"""Xception's separable conv and residual block (Chollet 2017, "Xception: Deep Learning with Depthwise Separable Convolutions").

The original Keras layout (timm's `legacy_xception`): separable convs without biases, each
followed by BatchNorm, and a 1x1 stride-2 conv + BN shortcut where the shape changes.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.nn.conv import ConvNormAct, conv1x1, depthwise_conv


class SeparableConvNorm(nn.Sequential):
    """3x3 depth-wise conv, 1x1 point-wise conv, BatchNorm: no norm or ReLU in between.

    The paper's Sec. 4.7 (Fig. 10) finds an intermediate non-linearity hurts; the convs carry
    no bias because the BatchNorm that follows would cancel it.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = depthwise_conv(in_channels, 3, padding=1, bias=False)
        self.pointwise = conv1x1(in_channels, out_channels, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)


class XceptionBlock(nn.Module):
    """(ReLU, separable conv + BN) x len(widths), an optional 3x3 stride-2 max-pool, plus a shortcut."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], stride: int, start_with_relu: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for index, width in enumerate(widths):
            if index > 0 or start_with_relu:
                # The first ReLU must not act in place: the shortcut reads the same tensor.
                layers.append(nn.ReLU(inplace=index > 0))
            layers.append(SeparableConvNorm(channels, width))
            channels = width
        if stride > 1:
            # Keras' MaxPooling2D(3, 2, padding="same"); pad 1 gives the same sizes (147->74->37->19->10).
            layers.append(nn.MaxPool2d(3, stride=stride, padding=1))
        self.residual = nn.Sequential(*layers)
        self.shortcut = None
        if stride > 1 or in_channels != channels:
            self.shortcut = ConvNormAct(in_channels, channels, 1, stride=stride, padding=0, act_layer=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return F(x) + shortcut(x); the shortcut takes x before the branch's first ReLU."""
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.residual(x) + shortcut
