"""Targets that move with their images: per-pixel masks and boxes through the geometric ops.

A geometric op moves pixels; its targets move with the same parameters, as torchvision's v2
transforms move `tv_tensors` with their image:
- a mask (B, H, W) of class indices moves by nearest neighbour, and a pixel brought in from
  outside the image is IGNORE (255), not background: nothing is known there;
- a box (class, x1, y1, x2, y2), in pixel units where pixel k covers [k, k + 1), becomes the
  enclosing box of its moved corners (affine and perspective ops map straight edges to straight
  edges), or the extent of the output pixels whose source lies inside it (elastic, whose field
  can fold), then is clipped to the image; a box the move left narrower or shorter than MIN_SIDE
  pixels is dropped (its row becomes padding, class -1), one that was that small before stays.
Photometric, filter, weather and occlusion ops leave targets alone; the mixing ops carry boxes
(and CutMix masks) their own way (cnnlab.data.augment.mixing). Ops that cannot move targets (the
policies' random op choice, MixUp on masks) are refused with one line.
"""

from __future__ import annotations

from enum import StrEnum

import torch
import torch.nn.functional as F

from cnnlab.data.boxes import rebox

IGNORE = 255  # a mask pixel no loss or metric counts
MIN_SIDE = 2.0  # pixels: a box thinner than this after a move holds too little of its object to keep


class TargetKind(StrEnum):
    """What a batch's targets are, as far as moving them goes."""

    LABELS = "labels"  # one class per image (or soft targets): nothing moves
    MASKS = "masks"  # (B, H, W) class per pixel
    BOXES = "boxes"  # (B, M, 5+) rows of (class, x1, y1, x2, y2), class -1 padding; then area and weight columns


def kind_of(target: torch.Tensor) -> TargetKind:
    """Return the kind of a batch's targets from their shape and dtype."""
    if target.ndim == 3 and target.is_floating_point():
        return TargetKind.BOXES
    return TargetKind.MASKS if target.ndim == 3 else TargetKind.LABELS


def corners(boxes: torch.Tensor) -> torch.Tensor:
    """Return the 4 corners (..., 4, 2) of boxes (..., 4) x1y1x2y2."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([torch.stack([x1, y1], -1), torch.stack([x2, y1], -1),
                        torch.stack([x2, y2], -1), torch.stack([x1, y2], -1)], -2)


def extent(inside: torch.Tensor) -> torch.Tensor:
    """Return the extent (..., 4) of the pixels marked in (..., H, W), pixel k covering [k, k + 1); (0, 0, 0, 0) when none."""
    height, width = inside.shape[-2:]
    cols, rows = inside.any(-2), inside.any(-1)  # (..., W), (..., H)

    def span(marked: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        first = marked.int().argmax(-1)
        last = size - marked.flip(-1).int().argmax(-1)
        found = marked.any(-1)
        return torch.where(found, first, 0).float(), torch.where(found, last, 0).float()

    (x1, x2), (y1, y2) = span(cols, width), span(rows, height)
    return torch.stack([x1, y1, x2, y2], -1)


def enclose(points: torch.Tensor) -> torch.Tensor:
    """Return the enclosing boxes (..., 4) of point sets (..., P, 2)."""
    low, high = points.amin(-2), points.amax(-2)
    return torch.cat([low, high], -1)


def settle(target: torch.Tensor, moved: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Return box rows with `moved` coordinates (B, M, 4) clipped to the image, thin boxes and padding as class -1."""
    limit = moved.new_tensor([width, height, width, height])
    clipped = torch.minimum(moved.clamp_min(0), limit)
    sides = clipped[..., 2:] - clipped[..., :2]
    before = target[..., 3:5] - target[..., 1:3]
    # A box the move left thinner than MIN_SIDE is dropped; one that was that thin already stays
    # (a flip must not turn a small object into background), unless nothing of it is left.
    keep = (((sides >= MIN_SIDE) | (sides >= before - 1e-4)) & (sides > 0)).all(-1) & (target[..., 0] >= 0)
    rows = rebox(target, clipped)
    return torch.where(keep.unsqueeze(-1), rows, torch.full_like(rows, -1.0))


def mask_at(mask: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Return masks (B, H, W) read by nearest neighbour at `grid` (B, H', W', 2; -1..1), IGNORE outside the image."""
    picked = F.grid_sample(mask.unsqueeze(1).float(), grid.float(), mode="nearest", padding_mode="zeros",
                           align_corners=False).squeeze(1)
    inside = (grid[..., 0].abs() <= 1) & (grid[..., 1].abs() <= 1)
    return torch.where(inside, picked, float(IGNORE)).round().to(mask.dtype)


def pixel_grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the (x, y) grid coordinates (-1..1, align_corners=False) of every pixel centre, each (H, W)."""
    ys = (torch.arange(height, device=device, dtype=torch.float32) * 2 + 1) / height - 1
    xs = (torch.arange(width, device=device, dtype=torch.float32) * 2 + 1) / width - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return gx, gy
