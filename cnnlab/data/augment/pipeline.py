"""The recipe's augment list as one object: checked against the data at start-up, then run on every batch.

Ops work on pixels in [0, 1]; the pipeline turns a uint8 batch into them, runs the ops in the
recipe's order (mixing ops turn the labels into soft targets), and normalises at the end. With
no ops the batch goes straight to normalisation, exactly as before ops existed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from cnnlab.data.augment.base import SIZED, DataFacts, constant
from cnnlab.data.augment.mixing import MIXING
from cnnlab.data.augment.photometric import PCALighting
from cnnlab.data.augment.targets import TargetKind, kind_of
from cnnlab.data.normalise import Normalisation
from cnnlab.errors import CnnlabError

PCA_IMAGES = 2000  # images whose pixels give PCA lighting's RGB covariance: ~2 M pixels, plenty for 3x3


def rgb_eigen(batches: Iterable[torch.Tensor], limit: int = PCA_IMAGES) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """Return the eigenvalues and eigenvectors (columns) of the RGB covariance of uint8 images (N, 3, H, W)."""
    total, total_sq, count, seen = torch.zeros(3, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64), 0, 0
    for images in batches:
        pixels = images[: max(limit - seen, 0)].double().div(255).permute(1, 0, 2, 3).reshape(3, -1)
        total += pixels.sum(1)
        total_sq += pixels @ pixels.T
        count += pixels.shape[1]
        seen += len(images)
        if seen >= limit:
            break
    mean = total / max(count, 1)
    covariance = total_sq / max(count, 1) - torch.outer(mean, mean)
    values, vectors = torch.linalg.eigh(covariance)
    return tuple(values.tolist()), tuple(tuple(row) for row in vectors.tolist())


def facts_of(first: torch.Tensor, mean: Sequence[float], eigen: tuple[Any, Any] = ((), ())) -> DataFacts:
    """Return the DataFacts of images shaped like `first` (N, C, H, W) with per-channel mean `mean`."""
    _, channels, height, width = first.shape
    return DataFacts(channels, height, width, tuple(mean), *eigen)


def _after(op: Any, facts: DataFacts) -> DataFacts:
    """Return the facts of images after `op`: only center_crop and random_crop change their size."""
    if getattr(op, "tag", "") not in SIZED:
        return facts
    return replace(facts, height=op.size, width=op.size)


@dataclass(frozen=True)
class Augmentation:
    """The checked ops of a recipe, with the fill colour and the number of classes they need."""

    ops: tuple[Any, ...]
    facts: DataFacts
    num_classes: int = 0  # for the soft targets of mixing ops

    @classmethod
    def build(cls, ops: Sequence[Any], facts: DataFacts, num_classes: int = 0,
              batches: Iterable[torch.Tensor] | None = None) -> Augmentation:
        """Return the ops checked against the data (one line on failure), PCA lighting fitted to `batches`."""
        if any(isinstance(op, PCALighting) for op in ops) and not facts.eigenvalues and facts.channels == 3:
            facts = replace(facts, **dict(zip(("eigenvalues", "eigenvectors"), rgb_eigen(batches or []), strict=True)))
        checked, shape = [], facts
        for op in ops:
            op.check_data(shape)
            checked.append(op.fitted(shape) if isinstance(op, PCALighting) else op)
            shape = _after(op, shape)
        return cls(tuple(checked), facts, num_classes)

    @classmethod
    def for_data(cls, ops: Sequence[Any], data: Any, norm: Normalisation, num_classes: int) -> Augmentation:
        """Return the ops checked against a training set (resident or streamed), PCA lighting fitted to its images."""
        first = next(iter(data.sample_batches(8)))
        return cls.build(ops, facts_of(first, norm.mean), num_classes, data.sample_batches(PCA_IMAGES))

    @property
    def mixes(self) -> bool:
        """Return whether an op mixes images, so the targets become soft."""
        return any(isinstance(op, MIXING) for op in self.ops)

    def output_size(self) -> tuple[int, int]:
        """Return the (height, width) of the images after the ops."""
        facts = self.facts
        for op in self.ops:
            facts = _after(op, facts)
        return facts.height, facts.width

    def pixels(self, x: torch.Tensor, y: torch.Tensor | None, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return images (uint8, or float in [0, 1]) and targets after every op, in the input's dtype."""
        dtype = x.dtype
        out = x.float().div(255) if dtype == torch.uint8 else x
        fill = constant(self.facts.mean, x.device, out.dtype).view(1, -1, 1, 1)
        if y is not None and kind_of(y) is not TargetKind.LABELS:  # masks or boxes: each op moves them with its pixels
            for op in self.ops:
                out, y = op.with_targets(out, y, generator, fill)
            return (out.mul(255).round().clamp(0, 255).to(torch.uint8) if dtype == torch.uint8 else out), y
        if self.mixes and y is not None and not y.is_floating_point():
            # scatter, not F.one_hot: one_hot checks the labels' range on the host.
            y = torch.zeros(len(y), self.num_classes, device=y.device).scatter_(1, y.view(-1, 1), 1.0)
        for op in self.ops:
            if isinstance(op, MIXING):
                if y is None:
                    y = torch.zeros(len(out), max(self.num_classes, 1), device=x.device)
                out, y = op(out, y, generator)
            else:
                out = op(out, generator, fill)
        if dtype == torch.uint8:
            out = out.mul(255).round().clamp(0, 255).to(torch.uint8)
        return out, y

    def __call__(self, images: torch.Tensor, y: torch.Tensor, norm: Normalisation,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Return a uint8 batch normalised after the ops, and its targets (soft after a mixing op)."""
        if not self.ops:
            return norm(images), y
        pixels, targets = self.pixels(images.float().div(255), y, generator)
        return norm.of_pixels(pixels), targets


def refuse_uncarried(ops: Sequence[Any], what: str) -> None:
    """Raise one line naming the first op that cannot carry `what` (masks, boxes) with its images, or that resizes them."""
    for op in ops:
        carries = getattr(op, "carries", True)
        if carries is not True and (carries is False or what not in carries):
            raise CnnlabError(f"augment {op.tag} cannot move {what} with its images: leave it out (flip, vflip, translate, "
                              "scale, resized_crop, rotate, shear, perspective, elastic and the photometric ops can)")
        if getattr(op, "tag", "") in SIZED:
            raise CnnlabError(f"augment {op.tag} changes the image size, and {what} are scored at the canvases' size: "
                              "leave it out (resized_crop crops and keeps the size)")


def augment_batch(augmentation: Augmentation, images: torch.Tensor, y: torch.Tensor, norm: Normalisation,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Return one training batch normalised after the recipe's ops, with its targets (the engine's per-step call)."""
    return augmentation(images, y, norm, generator)
