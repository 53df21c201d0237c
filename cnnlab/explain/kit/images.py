"""Image helpers the methods and checks share: Gaussian blur, baselines, and resizing a layer's map."""

from __future__ import annotations

from typing import Any

import torch

from cnnlab.data.augment.filters import gaussian_blur as batch_blur
from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.noise import seeded


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Return images blurred by a Gaussian of `sigma` pixels (reflect padding), the kernel reaching 3 sigma."""
    radius = max(1, int(3 * sigma + 0.5))
    return batch_blur(images, torch.full((len(images),), float(sigma), device=images.device), 2 * radius + 1)


def baseline_of(images: torch.Tensor, baseline: str | float | torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
    """Return the baseline images: black (0), blur (Gaussian, `sigma`), noise (uniform in `low`..`high`) or a tensor."""
    if isinstance(baseline, torch.Tensor):
        base = baseline.to(images.device, images.dtype)
        if base.shape[-3:] != images.shape[-3:]:
            raise CnnlabError(f"baseline of shape {tuple(base.shape)} does not match images {tuple(images.shape[1:])}")
        return base.expand_as(images)
    if isinstance(baseline, int | float):
        return torch.full_like(images, float(baseline))
    if baseline == "black":
        return torch.zeros_like(images)
    if baseline == "blur":
        return gaussian_blur(images, float(options.get("sigma", 5.0)))
    if baseline == "noise":
        low, high = float(options.get("low", 0.0)), float(options.get("high", 1.0))
        draw = torch.rand(images.shape, generator=seeded(options.get("seed"), images.device), device=images.device)
        return (low + (high - low) * draw).to(images.dtype)
    raise CnnlabError(f"unknown baseline {baseline!r}: choose black, blur, noise, a number or a tensor")


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Return (N, 1, h, w) maps resized bilinearly to `size` (align_corners=False, as Captum's interpolate)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return torch.nn.functional.interpolate(maps, size=size, mode="bilinear", align_corners=False)

