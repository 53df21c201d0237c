"""Test-time augmentation: the views of a batch whose logits the final score averages.

Beside the mirror and one-pixel shifts, the views of AlexNet (Krizhevsky et al. 2012, Sec. 4.1):
a network trained on random crops is tested on its centre crop, or on the four corner crops and
the centre with their mirrors (10-crop), and a fully convolutional one on the whole image at
several sizes (multi-scale, Simonyan & Zisserman 2015, Sec. 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError


class TTA(StrEnum):
    """Test-time views of the final test score, whose logits are averaged."""

    NONE = "none"
    FLIP = "flip"  # the image and its mirror (not for digits or text)
    SHIFT = "shift"  # the image and two copies shifted by one pixel
    FLIP_SHIFT = "flip+shift"  # the image, its mirror, each shifted by one pixel
    TEN_CROP = "10crop"  # four corner crops and the centre crop of evaluation.crop pixels, and their mirrors
    MULTI_SCALE = "multiscale"  # the whole image resized to each of evaluation.scales


def centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Return the central size x size square of a batch (torchvision's rounding of the offsets)."""
    height, width = x.shape[-2:]
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return x[..., top : top + size, left : left + size]


def five_crops(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Return the top-left, top-right, bottom-left, bottom-right and centre size x size crops."""
    return [x[..., :size, :size], x[..., :size, -size:], x[..., -size:, :size], x[..., -size:, -size:],
            centre_crop(x, size)]


def ten_crops(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Return the five crops of the image and the five of its mirror (torchvision's ten_crop order)."""
    return five_crops(x, size) + five_crops(x.flip(-1), size)


@dataclass(frozen=True)
class Views:
    """Which test-time views to average: the mode, the crop size (None: the whole image) and multi-scale's sizes."""

    mode: TTA = TTA.NONE
    crop: int | None = None
    scales: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        mode = TTA(self.mode)
        if mode is TTA.TEN_CROP and self.crop is None:
            raise CnnlabError("tta 10crop cuts crops of evaluation.crop pixels: set evaluation.crop (e.g. 28 of 32)")
        if mode is TTA.MULTI_SCALE and not self.scales:
            raise CnnlabError("tta multiscale needs the sizes to test at: set evaluation.scales, e.g. [28, 32, 36]")

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the views of a batch (B, C, H, W)."""
        mode, height, width = TTA(self.mode), x.shape[-2], x.shape[-1]
        if self.crop is not None and self.crop > min(height, width):
            raise CnnlabError(f"evaluation.crop={self.crop} is larger than the {height}x{width} test images: "
                              f"use at most {min(height, width)}")
        if mode is TTA.TEN_CROP:
            return ten_crops(x, self.crop)
        if mode is TTA.MULTI_SCALE:
            return [x if (s, s) == (height, width) else
                    F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False, antialias=s < min(height, width))
                    for s in self.scales]
        return tta_views(x if self.crop is None else centre_crop(x, self.crop), mode)


def tta_views(x: torch.Tensor, mode: TTA | str = TTA.NONE) -> list[torch.Tensor]:
    """Return the test-time views of a batch (B, C, H, W): itself, plus mirror and/or 1-pixel shifts."""
    mode = TTA(mode)
    if mode in (TTA.TEN_CROP, TTA.MULTI_SCALE):
        raise CnnlabError(f"tta {mode.value} needs its sizes: build Views(mode, crop, scales)")
    views = [x]
    if mode in (TTA.FLIP, TTA.FLIP_SHIFT):
        views.append(x.flip(3))
    if mode in (TTA.SHIFT, TTA.FLIP_SHIFT):
        height, width = x.shape[2:]
        # Zero borders, as the training translations pad (zero is the mean after normalisation).
        padded = F.pad(x, (1, 1, 1, 1))
        views.append(padded[:, :, 0:height, 0:width])  # content moves 1 down and right
        source = padded if mode is TTA.SHIFT else F.pad(x.flip(3), (1, 1, 1, 1))
        views.append(source[:, :, 2 : height + 2, 2 : width + 2])  # (the mirror) moves 1 up and left
    return views
