"""Per-channel normalisation of uint8 images: statistics from the training set, applied on the device."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and std of the training images, in 0..1 units."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, batches: torch.Tensor | Iterable[torch.Tensor]) -> Normalisation:
        """Return the per-channel statistics of uint8 images (N, C, H, W), given whole or in batches."""
        total = total_sq = None
        count = 0
        # float64 sums batch by batch: exact enough, and never a float copy of the whole set.
        for images in [batches] if isinstance(batches, torch.Tensor) else batches:
            if images.numel() == 0:
                continue  # a streamed batch of unreadable files
            x = images.double() / 255.0
            sums, squares = x.sum(dim=(0, 2, 3)), x.square().sum(dim=(0, 2, 3))
            total = sums if total is None else total + sums
            total_sq = squares if total_sq is None else total_sq + squares
            count += images.shape[0] * images.shape[2] * images.shape[3]
        if total is None or count < 2:
            raise CnnlabError("no training images to compute the normalisation from: check the data spec")
        mean = total / count
        std = ((total_sq - count * mean.square()) / (count - 1)).clamp_min(1e-12).sqrt()
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Return float images (x / 255 - mean) / std for uint8 images (B, C, H, W)."""
        scale, shift = _affine(self.mean, self.std, images.device)
        return torch.addcmul(shift, images.float(), scale)  # one multiply-add per value

    def of_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return float images (x - mean) / std for float pixels in [0, 1] (B, C, H, W)."""
        scale, shift = _affine(self.mean, self.std, pixels.device)
        return torch.addcmul(shift, pixels, scale * 255.0)


@functools.lru_cache(maxsize=16)
def _affine(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (scale, shift) of uint8 -> normalised, made once per device: no copy per batch."""
    scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, -1, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, -1, 1, 1)
    return scale.to(device), shift.to(device)
