"""Occlusion: Cutout, random erasing and coarse dropout, each hiding part of the image behind the fill colour.

The fill is the data's mean colour, 0 after normalisation, as DeVries & Taylor's zero mask on
normalised images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from cnnlab.data.augment.base import DataFacts, Op, Params, check, uniform


def box_mask(top: torch.Tensor, left: torch.Tensor, h: torch.Tensor, w: torch.Tensor,
             height: int, width: int) -> torch.Tensor:
    """Return (B, 1, H, W) masks, true inside each image's box [top, top + h) x [left, left + w)."""
    ys = torch.arange(height, device=top.device).view(1, 1, -1, 1)
    xs = torch.arange(width, device=top.device).view(1, 1, 1, -1)
    top, left, h, w = (v.view(-1, 1, 1, 1) for v in (top, left, h, w))
    return (ys >= top) & (ys < top + h) & (xs >= left) & (xs < left + w)


@dataclass(frozen=True)
class Cutout(Op):
    """Hide a size x size square around a random centre of each image (DeVries & Taylor 2017).

    The square spans `size // 2` pixels each side of the centre (an odd side, 2 (size // 2) + 1),
    clipped at the borders, so it may hang partly outside the image as in the paper.
    """

    tag: ClassVar[str] = "cutout"
    size: int = 8  # the paper's CIFAR-10 square is 16 for ResNet-18; half that suits small nets

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.size >= 1, f"cutout size={self.size} must be >= 1 (leave the op out for none)")

    def nonnegative(self) -> tuple[str, ...]:
        """Return no fields: size has its own, stricter check."""
        return ()

    def check_data(self, facts: DataFacts) -> None:
        """Refuse a square larger than the images."""
        super().check_data(facts)
        check(self.size <= max(facts.height, facts.width),
              f"cutout size={self.size} is larger than the {facts.height}x{facts.width} images: use a smaller size")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each square's centre row and column."""
        _, height, width = shape
        return {"cy": torch.randint(0, height, (count,), generator=generator, device=device),
                "cx": torch.randint(0, width, (count,), generator=generator, device=device)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, cy: torch.Tensor, cx: torch.Tensor) -> torch.Tensor:
        """Return the images with their square set to the fill colour."""
        half = self.size // 2
        side = torch.full_like(cy, 2 * half + 1)
        inside = box_mask(cy - half, cx - half, side, side, *x.shape[-2:])
        return torch.where(inside, fill.to(x.dtype), x)


@dataclass(frozen=True)
class RandomErasing(Op):
    """Erase a random box of area [min_area, max_area] and aspect [min_ratio, max_ratio] inside each image (Zhong et al. 2017).

    `noise: true` fills the box with uniform noise (the paper's best setting on CIFAR); by default it
    takes the fill colour, as timm's "const" mode and the DataLoader-free path want (no noise drawn).
    """

    tag: ClassVar[str] = "random_erasing"
    neutral: ClassVar[dict[str, float]] = {"max_area": 0.0, "min_area": 0.0}
    p: float = 0.5  # the paper's probability
    min_area: float = 0.02
    max_area: float = 0.4
    min_ratio: float = 0.3
    max_ratio: float = 3.3
    noise: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.min_area <= self.max_area <= 1, "random_erasing needs min_area <= max_area <= 1")
        check(0 < self.min_ratio <= self.max_ratio, "random_erasing needs 0 < min_ratio <= max_ratio")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each box (top, left, h, w) and its noise (B, C, H, W)."""
        channels, height, width = shape
        area = uniform(self.min_area, self.max_area, count, generator, device) * height * width
        ratio = torch.exp(uniform(math.log(self.min_ratio), math.log(self.max_ratio), count, generator, device))
        h = torch.sqrt(area * ratio).round().clamp(0, height)
        w = torch.sqrt(area / ratio).round().clamp(0, width)
        top = (torch.rand(count, generator=generator, device=device) * (height - h + 1)).floor()
        left = (torch.rand(count, generator=generator, device=device) * (width - w + 1)).floor()
        shape_noise = (count, channels, height, width) if self.noise else (count, 1, 1, 1)
        noise = torch.rand(shape_noise, generator=generator, device=device)
        return {"top": top, "left": left, "h": h, "w": w, "noise": noise}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, top: torch.Tensor, left: torch.Tensor, h: torch.Tensor,
              w: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Return the images with their box erased."""
        inside = box_mask(top, left, h, w, *x.shape[-2:])
        return torch.where(inside, noise.to(x.dtype) if self.noise else fill.to(x.dtype), x)


@dataclass(frozen=True)
class CoarseDropout(Op):
    """Hide a random fraction in [0, amount] of the cells of a grid of `cell`-pixel squares (imgaug's CoarseDropout)."""

    tag: ClassVar[str] = "coarse_dropout"
    neutral: ClassVar[dict[str, float]] = {"amount": 0.0}
    amount: float = 0.2
    cell: int = 4  # side of a dropped square in pixels

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.amount <= 1 and self.cell >= 1, "coarse_dropout needs amount <= 1 and cell >= 1")

    def check_data(self, facts: DataFacts) -> None:
        """Refuse cells larger than the image."""
        super().check_data(facts)
        check(self.cell <= min(facts.height, facts.width),
              f"coarse_dropout cell={self.cell} is larger than the {facts.height}x{facts.width} images")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's dropped cells (B, 1, H / cell, W / cell), rounded up."""
        _, height, width = shape
        amount = uniform(0.0, self.amount, count, generator, device).view(-1, 1, 1, 1)
        cells = (count, 1, -(-height // self.cell), -(-width // self.cell))
        return {"cells": (torch.rand(cells, generator=generator, device=device) < amount).float()}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, cells: torch.Tensor) -> torch.Tensor:
        """Return the images with their dropped cells set to the fill colour."""
        height, width = x.shape[-2:]
        mask = F.interpolate(cells, scale_factor=self.cell, mode="nearest")[..., :height, :width] > 0.5
        return torch.where(mask, fill.to(x.dtype), x)
