"""DenseNet-BC blocks (Huang, Liu, van der Maaten, Weinberger 2017, "Densely Connected Convolutional Networks").

Registered in torchvision's order (norm, act, conv; bottleneck before conv) so its weights map
one to one onto cnnlab.models.densenet.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.nn.conv import conv


class NormActConv(nn.Sequential):
    """BN -> ReLU -> conv, the pre-activation composite function H_l (Sec. 3)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.act = nn.ReLU(inplace=True)
        self.conv = conv(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)


class DenseLayer(nn.Sequential):
    """BN-ReLU-Conv1x1(4k) then BN-ReLU-Conv3x3(k): one layer of a DenseNet-BC block."""

    def __init__(self, in_channels: int, *, growth_rate: int, bottleneck_factor: int = 4, drop_rate: float = 0.0) -> None:
        super().__init__()
        # The "B" of DenseNet-BC: a 1x1 conv to bottleneck_factor * k maps keeps the 3x3 cheap.
        width = bottleneck_factor * growth_rate
        self.bottleneck = NormActConv(in_channels, width, 1)
        self.conv = NormActConv(width, growth_rate, 3)
        if drop_rate > 0:
            self.dropout = nn.Dropout(drop_rate)


class DenseBlock(nn.Module):
    """`num_layers` dense layers, each fed the concatenation of the block input and all before it."""

    def __init__(self, num_layers: int, in_channels: int, *, growth_rate: int, bottleneck_factor: int = 4,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        k = growth_rate
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + i * k, growth_rate=k, bottleneck_factor=bottleneck_factor, drop_rate=drop_rate)
            for i in range(num_layers)
        )
        self.out_channels = in_channels + num_layers * k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block input and every layer's k new maps, concatenated (B, C + L k, H, W)."""
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=1)  # (B, C + k, H, W): x_l = H_l([x_0, ..., x_{l-1}])
        return x


class Transition(NormActConv):
    """BN-ReLU-Conv1x1 (compression) then 2x2 average pooling: between two dense blocks."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 1)
        self.pool = nn.AvgPool2d(2, stride=2)
