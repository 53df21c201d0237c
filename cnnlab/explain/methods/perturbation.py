"""The perturbation family's windows and masks: occlusion and RISE (LIME and KernelSHAP: methods.superpixels).

Each builds many perturbed copies of every image and scores them in shared, chunked forward
passes (`kit.batching.sampled_scores`): occlusion windows and RISE masks are never run one image
at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.batching import sampled_scores
from cnnlab.explain.kit.noise import seeded
from cnnlab.explain.kit.options import Options, bound
from cnnlab.explain.kit.registry import check_options, register
from cnnlab.explain.kit.types import Context, Result

FILLS = ("mean", "blur")


@dataclass(frozen=True)
class OcclusionOptions(Options):
    """Occlusion (Zeiler & Fergus 2014): the sliding patch and what fills it."""

    window: int | None = bound(1)
    stride: int | None = bound(1)
    fill: str | float | None = bound(choices=FILLS)


@dataclass(frozen=True)
class RiseOptions(Options):
    """RISE (Petsiuk et al. 2018): random masks, their grid and keep probability."""

    masks: int | None = bound(1, 1_000_000)
    cells: int | None = bound(1)
    p: float | None = bound(0, 1, open_low=True)



def fill_images(images: torch.Tensor, fill: str | float) -> torch.Tensor:
    """Return what occluded pixels become: a constant, the image's mean colour, or a blurred copy."""
    from cnnlab.explain.kit.images import gaussian_blur

    if fill == "mean":
        return images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    if fill == "blur":
        return gaussian_blur(images, 5.0)
    try:
        return torch.full_like(images, float(fill))
    except (TypeError, ValueError):
        raise CnnlabError(f"unknown fill {fill!r}: give a number, mean or blur") from None


def window_grid(size: int, window: int, stride: int) -> list[int]:
    """Return the window starts along one axis: every `stride`, plus one flush with the far edge."""
    starts = list(range(0, max(size - window, 0) + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


@register("occlusion", "perturbation", options=OcclusionOptions)
def occlusion(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return the mean drop of the target score over the windows covering each pixel (Zeiler & Fergus 2014, Sec. 4.2)."""
    check_options("occlusion", options, ["window", "stride", "fill"])
    n, _, height, width = images.shape
    window = int(options.get("window", max(1, min(height, width) // 8)))
    stride = int(options.get("stride", max(1, window // 2)))
    fill = options.get("fill", 0.0)
    if not 1 <= window <= min(height, width) or stride < 1:
        raise CnnlabError(f"occlusion needs 1 <= window <= {min(height, width)} and stride >= 1 (got {window}, {stride})")
    rows, cols = window_grid(height, window, stride), window_grid(width, window, stride)
    starts = torch.tensor([(r, c) for r in rows for c in cols], device=images.device)  # (S, 2)
    ys = torch.arange(height, device=images.device)
    xs = torch.arange(width, device=images.device)
    covers = (((ys[None, :] >= starts[:, :1]) & (ys[None, :] < starts[:, :1] + window))[:, :, None]
              & ((xs[None, :] >= starts[:, 1:]) & (xs[None, :] < starts[:, 1:] + window))[:, None, :])  # (S, H, W)
    filled = fill_images(images, fill)

    def make(i: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return torch.where(covers[s][:, None], filled[i], images[i])

    scores = sampled_scores(ctx.forward, targets, n, len(starts), make, ctx.max_batch)  # (N, S)
    base = sampled_scores(ctx.forward, targets, n, 1, lambda i, s: images[i], ctx.max_batch)  # (N, 1)
    drops = (base - scores).to(images.dtype)
    total = torch.einsum("ns,shw->nhw", drops, covers.to(images.dtype))
    count = covers.sum(0).clamp(min=1)
    return Result((total / count)[:, None], {"window": window, "stride": stride, "fill": fill, "windows": len(starts)})


@register("rise", "perturbation", seeded=True, options=RiseOptions)
def rise(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return RISE's saliency: the target probability under random masks, averaged with the masks (Petsiuk et al. 2018)."""
    check_options("rise", options, ["masks", "cells", "p", "seed", "fill"])
    n, _, height, width = images.shape
    count = int(options.get("masks", 2000))
    cells = int(options.get("cells", 7))
    p = float(options.get("p", 0.5))
    if count < 1 or cells < 1 or not 0 < p < 1:
        raise CnnlabError(f"rise needs masks >= 1, cells >= 1 and 0 < p < 1 (got {count}, {cells}, {p})")
    masks = rise_masks(count, cells, p, (height, width), seeded(options.get("seed"), images.device))  # (M, H, W)
    filled = fill_images(images, options.get("fill", 0.0))

    def make(i: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        m = masks[s][:, None].to(images.dtype)
        return images[i] * m + filled[i] * (1 - m)

    def probability(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return logits.softmax(1).gather(1, target.view(-1, 1)).squeeze(1)

    scores = sampled_scores(ctx.forward, targets, n, count, make, ctx.max_batch, probability)  # (N, M)
    maps = torch.einsum("nm,mhw->nhw", scores.to(images.dtype), masks.to(images.dtype)) / (count * p)
    return Result(maps[:, None], {"masks": count, "cells": cells, "p": p, "seed": options.get("seed", 0)})


def rise_masks(count: int, cells: int, p: float, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """Return `count` RISE masks (M, H, W): a cells x cells binary grid, upsampled bilinearly and shifted at random."""
    height, width = size
    cell_h, cell_w = math.ceil(height / cells), math.ceil(width / cells)
    grid = (torch.rand((count, 1, cells, cells), generator=generator, device=generator.device) < p).float()
    big = F.interpolate(grid, size=((cells + 1) * cell_h, (cells + 1) * cell_w), mode="bilinear", align_corners=False)
    dy = torch.randint(cell_h, (count,), generator=generator, device=generator.device)
    dx = torch.randint(cell_w, (count,), generator=generator, device=generator.device)
    rows = (dy[:, None] + torch.arange(height, device=dy.device)[None])  # (M, H)
    cols = (dx[:, None] + torch.arange(width, device=dx.device)[None])  # (M, W)
    big = big[:, 0]
    # Bilinear weights can round a hair past 1; a mask is a keep-probability, so clamp it.
    return big[torch.arange(count, device=dy.device)[:, None, None], rows[:, :, None], cols[:, None, :]].clamp_(0, 1)


# --- superpixels and the surrogate models ------------------------------------------------------
