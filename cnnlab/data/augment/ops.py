"""Augmentation ops: each takes a normalised batch (B, C, H, W) on its device and draws per image.

An op is a frozen dataclass whose fields are its parameters, checked when the recipe is read;
`tag` is its name in a recipe (`{op: translate, padding: 4}`). Random numbers come from a
generator on the batch's device, so nothing crosses to the host inside an epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise CnnlabError(f"recipe: augment {message}")


@dataclass(frozen=True)
class Flip:
    """Mirror each image left-right with probability p."""

    tag: ClassVar[str] = "flip"
    tag_key: ClassVar[str] = "op"
    p: float = 0.5  # the usual coin: half the batch is mirrored (not for digits or text)

    def __post_init__(self) -> None:
        _check(0.0 <= self.p <= 1.0, f"flip p={self.p} must lie in [0, 1]")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return the batch with a random subset mirrored."""
        flip = torch.rand(x.shape[0], generator=generator, device=x.device) < self.p
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


@dataclass(frozen=True)
class Translate:
    """Shift each image by up to `padding` pixels each way, zeros coming in (crop after zero padding)."""

    tag: ClassVar[str] = "translate"
    tag_key: ClassVar[str] = "op"
    padding: int = 4  # He et al. 2016's CIFAR crop: 4 pixels

    def __post_init__(self) -> None:
        _check(self.padding >= 0, f"translate padding={self.padding} must be >= 0")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return a random crop of each zero-padded image, the input's size."""
        batch, channels, height, width = x.shape
        device, pad = x.device, self.padding
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=device)
        dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=device)
        rows = (dy.view(-1, 1) + torch.arange(height, device=device)).view(batch, 1, height, 1)
        cols = (dx.view(-1, 1) + torch.arange(width, device=device)).view(batch, 1, 1, width)
        index = torch.arange(batch, device=device).view(-1, 1, 1, 1)
        return padded[index, torch.arange(channels, device=device).view(1, -1, 1, 1), rows, cols]


@dataclass(frozen=True)
class Cutout:
    """Zero a square around a random centre of each image (DeVries & Taylor 2017).

    The square spans `size // 2` pixels each side of the centre (an odd side, 2 (size // 2) + 1),
    clipped at the borders, so it may hang partly outside the image as in the paper.
    """

    tag: ClassVar[str] = "cutout"
    tag_key: ClassVar[str] = "op"
    size: int = 8  # the paper's CIFAR-10 square is 16 for ResNet-18; half that suits small nets

    def __post_init__(self) -> None:
        _check(self.size >= 1, f"cutout size={self.size} must be >= 1 (leave the op out for none)")

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return the batch with one square per image set to zero (the mean after normalisation)."""
        batch, _, height, width = x.shape
        device = x.device
        cy = torch.randint(0, height, (batch,), generator=generator, device=device).view(-1, 1, 1, 1)
        cx = torch.randint(0, width, (batch,), generator=generator, device=device).view(-1, 1, 1, 1)
        ys = torch.arange(height, device=device).view(1, 1, -1, 1)
        xs = torch.arange(width, device=device).view(1, 1, 1, -1)
        half = self.size // 2
        inside = ((ys - cy).abs() <= half) & ((xs - cx).abs() <= half)
        return x.masked_fill(inside, 0.0)


AugmentOp = Flip | Translate | Cutout
OPS: dict[str, type] = {op.tag: op for op in (Flip, Translate, Cutout)}


def augment_batch(x: torch.Tensor, ops: tuple[AugmentOp, ...], generator: torch.Generator) -> torch.Tensor:
    """Return a normalised batch (B, C, H, W) after each op in turn."""
    for op in ops:
        x = op(x, generator)
    return x
