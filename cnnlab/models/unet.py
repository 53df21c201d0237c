"""U-Net (Ronneberger, Fischer, Brox 2015): a contracting path, an expanding path, skip links.

As in the paper's Fig. 1: each level applies two unpadded 3x3 convs with ReLU; a 2x2 max-pool
goes down a level and doubles the channels (64 ... 1024); a 2x2 stride-2 transposed conv goes
up and halves them, and the result is concatenated with the encoder map of that level, centre
cropped because the valid convs shrank the upsampled map more; a 1x1 conv maps 64 channels to
the classes. A 572x572 tile gives a 388x388 map. Padding "same" keeps every map its input size
(for inputs divisible by 16), so nothing is cropped and the output matches the input.
It is a dense-prediction model: forward returns (B, num_classes, H_out, W_out), not logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import torch
from torch import nn

from cnnlab.models.registry import register_model
from cnnlab.nn import ConvNormAct, conv1x1, conv_transpose

PAPER = "Ronneberger, Fischer, Brox: U-Net: Convolutional Networks for Biomedical Image Segmentation"


class ConvPadding(StrEnum):
    """Padding of the 3x3 convs."""

    VALID = "valid"  # the paper: each conv trims a pixel from every border
    SAME = "same"  # one pixel of zeros: output size = input size


@dataclass(frozen=True)
class UNetConfig:
    """Channel widths per level and the conv padding."""

    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)  # levels, top to the bottleneck
    padding: ConvPadding = ConvPadding.VALID
    norm_layer: type[nn.Module] | None = None  # the paper has none; nn.BatchNorm2d trains a small one faster


class DoubleConv(nn.Sequential):
    """Two 3x3 convs, each with a ReLU (and a bias: no normalisation in the paper, unless norm_layer)."""

    def __init__(self, in_channels: int, out_channels: int, padding: ConvPadding,
                 norm_layer: type[nn.Module] | None = None) -> None:
        super().__init__()
        pad = 0 if padding is ConvPadding.VALID else 1
        self.conv1 = ConvNormAct(in_channels, out_channels, 3, padding=pad, norm_layer=norm_layer)
        self.conv2 = ConvNormAct(out_channels, out_channels, 3, padding=pad, norm_layer=norm_layer)


class Down(nn.Sequential):
    """2x2 max-pool (stride 2) then a DoubleConv: one level down the contracting path."""

    def __init__(self, in_channels: int, out_channels: int, padding: ConvPadding,
                 norm_layer: type[nn.Module] | None = None) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2, stride=2)
        self.convs = DoubleConv(in_channels, out_channels, padding, norm_layer)


class Up(nn.Module):
    """2x2 stride-2 transposed conv halving the channels, concatenation with the cropped skip, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, padding: ConvPadding,
                 norm_layer: type[nn.Module] | None = None) -> None:
        super().__init__()
        self.up = conv_transpose(in_channels, in_channels // 2, 2, stride=2)
        self.convs = DoubleConv(in_channels // 2 + out_channels, out_channels, padding, norm_layer)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Return DoubleConv([crop(skip), up(x)]) for a deeper map x and the encoder map skip."""
        x = self.up(x)  # (B, C/2, 2h, 2w)
        skip = center_crop(skip, x.shape[-2], x.shape[-1])  # (B, C_skip, 2h, 2w)
        x = torch.cat([skip, x], dim=1)  # (B, C_skip + C/2, 2h, 2w)
        return self.convs(x)


def center_crop(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Return the central height x width window of x (B, C, H, W); the extra pixel goes last."""
    top = (x.shape[-2] - height) // 2
    left = (x.shape[-1] - width) // 2
    return x[..., top : top + height, left : left + width]  # (B, C, height, width)


class UNet(nn.Module):
    """Encoder levels, bottleneck, decoder levels with skip links, 1x1 conv to the classes."""

    def __init__(self, config: UNetConfig, num_classes: int = 2, in_chans: int = 1) -> None:
        super().__init__()
        widths, padding, norm = config.widths, config.padding, config.norm_layer
        self.num_classes = num_classes
        self.encoder = nn.ModuleList([DoubleConv(in_chans, widths[0], padding, norm)])
        self.encoder.extend(Down(a, b, padding, norm) for a, b in zip(widths[:-2], widths[1:-1], strict=True))
        self.bottleneck = Down(widths[-2], widths[-1], padding, norm)
        deep_to_shallow = widths[::-1]
        self.decoder = nn.ModuleList(
            Up(a, b, padding, norm) for a, b in zip(deep_to_shallow[:-1], deep_to_shallow[1:], strict=True)
        )
        self.head = conv1x1(widths[0], num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # The paper's Sec. 3: Gaussian weights with std sqrt(2 / N), N the inputs of one unit.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.ConvTranspose2d):
                # Stride = kernel: each output pixel sees one tap per input channel, so N = C_in.
                nn.init.normal_(module.weight, std=(2 / module.in_channels) ** 0.5)
                nn.init.zeros_(module.bias)

    def feature_layers(self) -> list[str]:
        """Return the dotted names of the encoder levels, the bottleneck and the decoder levels."""
        encoder = [f"encoder.{i}" for i in range(len(self.encoder))]
        decoder = [f"decoder.{i}" for i in range(len(self.decoder))]
        return [*encoder, "bottleneck", *decoder]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return per-pixel class scores (B, num_classes, H_out, W_out); valid 572 -> 388."""
        skips = []
        for level in self.encoder:
            x = level(x)
            skips.append(x)
        x = self.bottleneck(x)  # (B, widths[-1], h, w): 28 x 28 for a 572 tile
        for level, skip in zip(self.decoder, reversed(skips), strict=True):
            x = level(x, skip)
        return self.head(x)  # (B, num_classes, H_out, W_out)


@register_model(
    family="unet",
    paper=PAPER,
    year=2015,
    input_size=(1, 572, 572),
    min_train_size=188,  # valid convs: the smallest tile with a 4x4 output
    min_eval_size=188,
    classifier=False,
    default_classes=2,
)
def unet(num_classes: int = 2, in_chans: int = 1, padding: Literal["valid", "same"] = "valid", **kwargs: object) -> UNet:
    """Return the paper's U-Net: 64-128-256-512-1024 channels, valid 3x3 convs by default."""
    config = UNetConfig(padding=ConvPadding(padding), **kwargs)
    return UNet(config, num_classes=num_classes, in_chans=in_chans)


@register_model(
    family="unet",
    paper=PAPER,
    year=2015,
    input_size=(1, 64, 64),
    min_train_size=8,  # three 2x2 pools: sides divisible by 8
    min_eval_size=8,
    classifier=False,
    default_classes=11,
)
def unet_small(num_classes: int = 11, in_chans: int = 1, **kwargs: object) -> UNet:
    """Return a small U-Net for CPU-sized segmentation: 8-16-32-64 channels, "same" convs with BatchNorm."""
    options = {"widths": (8, 16, 32, 64), "padding": ConvPadding.SAME, "norm_layer": nn.BatchNorm2d, **kwargs}
    return UNet(UNetConfig(**options), num_classes=num_classes, in_chans=in_chans)
