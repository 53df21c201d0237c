"""Procedural weather: fog, clouds, snow and rain layers drawn over each image, as imgaug's weather examples.

Fog and clouds are fractal noise (octaves of bilinearly enlarged random grids); snow is sparse
soft flakes; rain is sparse drops smeared into streaks by a line kernel at an angle per image
(built here: kornia's motion_blur copies the angles to the host). A density or amount of 0
leaves the image as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from cnnlab.data.augment.base import DataFacts, Op, Params, check, uniform


def fractal_noise(count: int, height: int, width: int, octaves: int, coarsest: int, generator: torch.Generator,
                  device: torch.device) -> torch.Tensor:
    """Return (B, 1, H, W) noise in [0, 1]: octaves of random grids from `coarsest` cells across, halving in size."""
    total = torch.zeros(count, 1, height, width, device=device)
    weight = 1.0
    for octave in range(octaves):
        cells = coarsest * 2**octave
        grid = torch.rand(count, 1, cells + 1, cells + 1, generator=generator, device=device)
        total += weight * F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=True)
        weight /= 2
    low = total.amin(dim=(2, 3), keepdim=True)
    high = total.amax(dim=(2, 3), keepdim=True)
    return (total - low) / (high - low).clamp_min(1e-6)


def streak_kernels(angle: torch.Tensor, length: int) -> torch.Tensor:
    """Return (B, k, k) kernels, k = length: a line through the centre at `angle` degrees from the x axis, summing to 1."""
    taps = torch.arange(length, device=angle.device, dtype=torch.float32) - (length - 1) / 2
    ys, xs = torch.meshgrid(taps, taps, indexing="ij")
    theta = torch.deg2rad(angle.float()).view(-1, 1, 1)
    across = (xs * torch.sin(theta) - ys * torch.cos(theta)).abs()  # distance from the line
    kernel = (1 - across).clamp_min(0)
    return kernel / kernel.sum(dim=(1, 2), keepdim=True)


def _haze(x: torch.Tensor, layer: torch.Tensor, density: torch.Tensor, colour: float) -> torch.Tensor:
    alpha = (layer * density.view(-1, 1, 1, 1)).to(x.dtype)
    return (x * (1 - alpha) + colour * alpha).clamp(0, 1)


@dataclass(frozen=True)
class Fog(Op):
    """Blend each image towards light grey through smooth fractal noise, at a density in [0, density]."""

    tag: ClassVar[str] = "fog"
    neutral: ClassVar[dict[str, float]] = {"density": 0.0}
    density: float = 0.6

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.density <= 1, f"fog density={self.density} must lie in [0, 1]")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's fog layer (B, 1, H, W) and density."""
        _, height, width = shape
        layer = 0.5 + 0.5 * fractal_noise(count, height, width, 3, 2, generator, device)
        return {"layer": layer, "density": uniform(0.0, self.density, count, generator, device)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, layer: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
        """Return the images behind their fog."""
        return _haze(x, layer, density, 0.85)


@dataclass(frozen=True)
class Clouds(Op):
    """Lay bright, patchy clouds over each image (thresholded fractal noise), at a density in [0, density]."""

    tag: ClassVar[str] = "clouds"
    neutral: ClassVar[dict[str, float]] = {"density": 0.0}
    density: float = 0.8

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.density <= 1, f"clouds density={self.density} must lie in [0, 1]")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's cloud layer (B, 1, H, W) and density."""
        _, height, width = shape
        noise = fractal_noise(count, height, width, 4, 3, generator, device)
        cover = uniform(0.3, 0.6, count, generator, device).view(-1, 1, 1, 1)  # sky below this level stays clear
        layer = ((noise - cover) / (1 - cover)).clamp(0, 1).sqrt()
        return {"layer": layer, "density": uniform(0.0, self.density, count, generator, device)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, layer: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
        """Return the images under their clouds."""
        return _haze(x, layer, density, 0.97)


@dataclass(frozen=True)
class Snow(Op):
    """Scatter soft white flakes over each image, a fraction in [0, amount] of its pixels."""

    tag: ClassVar[str] = "snow"
    neutral: ClassVar[dict[str, float]] = {"amount": 0.0}
    amount: float = 0.05
    flake: float = 0.8  # flake softness: the Gaussian's sigma in pixels

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.amount <= 1 and self.flake > 0, "snow needs amount <= 1 and flake > 0")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's flake layer (B, 1, H, W), 0..1."""
        from cnnlab.data.augment.filters import gaussian_blur

        _, height, width = shape
        amount = uniform(0.0, self.amount, count, generator, device).view(-1, 1, 1, 1)
        seeds = (torch.rand(count, 1, height, width, generator=generator, device=device) < amount).float()
        size = min(2 * int(3 * self.flake) + 1, 2 * min(height, width) - 1)
        soft = gaussian_blur(seeds, torch.full((count,), self.flake, device=device), size)
        peak = 1 / (2 * torch.pi * self.flake**2)  # a lone flake's centre after blurring
        return {"layer": (soft / min(peak, 1.0)).clamp(0, 1)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, layer: torch.Tensor) -> torch.Tensor:
        """Return the images with their flakes, whiter where the layer is dense."""
        return torch.maximum(x, layer.to(x.dtype))


@dataclass(frozen=True)
class Rain(Op):
    """Draw grey streaks of `length` pixels, slanted by up to `slant` degrees, from a fraction in [0, amount] of pixels."""

    tag: ClassVar[str] = "rain"
    neutral: ClassVar[dict[str, float]] = {"amount": 0.0}
    amount: float = 0.04
    length: int = 7  # odd streak length in pixels
    slant: float = 20.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.amount <= 1 and self.length % 2 == 1 and self.length >= 3, "rain needs amount <= 1 and an odd length >= 3")

    def check_data(self, facts: DataFacts) -> None:
        """Refuse streaks longer than the images."""
        super().check_data(facts)
        check(self.length <= min(facts.height, facts.width), f"rain length={self.length} exceeds the image size")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's streak layer (B, 1, H, W), 0..1."""
        _, height, width = shape
        amount = uniform(0.0, self.amount, count, generator, device).view(-1, 1, 1, 1)
        drops = (torch.rand(count, 1, height, width, generator=generator, device=device) < amount).float()
        angle = 90 + uniform(-self.slant, self.slant, count, generator, device)  # 90 degrees: straight down
        kernels = streak_kernels(angle, self.length).unsqueeze(1)  # (B, 1, k, k)
        half = self.length // 2
        streaks = F.conv2d(F.pad(drops.view(1, count, height, width), (half, half, half, half)), kernels,
                           groups=count).view(count, 1, height, width)
        dim = 1 - 2 * amount.view(-1)  # heavier rain, darker sky; none leaves the image as it is
        return {"layer": (streaks * self.length / 2).clamp(0, 1), "dim": dim}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, layer: torch.Tensor, dim: torch.Tensor) -> torch.Tensor:
        """Return the images, darkened by `dim`, behind their rain."""
        alpha = 0.7 * layer.to(x.dtype)
        return (dim.to(x.dtype).view(-1, 1, 1, 1) * x * (1 - alpha) + 0.75 * alpha).clamp(0, 1)
