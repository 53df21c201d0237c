"""Boxes with their images: letterboxing to a model's square input and back, and drawing detections.

Letterboxing scales an image by one factor so that its longer side fits the square, keeps the
aspect ratio, and centres it on zero padding; a box moves by the same scale and offset, and a
detection on the square maps back to the original image by the inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.utils import draw_bounding_boxes

from cnnlab.models.detector import AREA

#: Ten colours that stay apart on grey digits and photographs alike (the tab10 palette's hues).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed on the square: scaled by `scale`, then shifted right by `left` and down by `top`."""

    scale: float
    left: int
    top: int

    def forward(self, boxes: torch.Tensor) -> torch.Tensor:
        """Return boxes (..., 4) x1y1x2y2 of the original image in the square's pixels."""
        shift = boxes.new_tensor([self.left, self.top, self.left, self.top])
        return boxes * self.scale + shift

    def inverse(self, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Return boxes (..., 4) on the square in the original image's pixels, clipped to its `height` x `width`."""
        shift = boxes.new_tensor([self.left, self.top, self.left, self.top])
        out = (boxes - shift) / self.scale
        limit = boxes.new_tensor([width, height, width, height])
        return torch.minimum(out.clamp_min(0), limit)


def letterbox(image: torch.Tensor, size: int) -> tuple[torch.Tensor, Letterbox]:
    """Return a uint8 image (C, H, W) scaled to fit a size x size square, centred on zeros, and its placement."""
    channels, height, width = image.shape
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    if (new_h, new_w) != (height, width):
        resized = F.interpolate(image[None].float(), size=(new_h, new_w), mode="bilinear", antialias=True,
                                align_corners=False)[0].round().clamp(0, 255).to(torch.uint8)
    else:
        resized = image
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas = torch.zeros(channels, size, size, dtype=torch.uint8)
    canvas[:, top : top + new_h, left : left + new_w] = resized
    return canvas, Letterbox(scale, left, top)


def letterbox_padded(image: torch.Tensor, size: int, pad: int) -> tuple[torch.Tensor, Letterbox]:
    """Return an image letterboxed to size x size then zero-padded by `pad`, as a run placed its images, and the placement."""
    canvas, placement = letterbox(image, size)
    if pad:
        canvas = F.pad(canvas, (pad, pad, pad, pad))
        placement = Letterbox(placement.scale, placement.left + pad, placement.top + pad)
    return canvas, placement


def place_with_boxes(images: torch.Tensor, targets: torch.Tensor, size: int | None,
                     pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return uint8 images (N, C, H, W) letterboxed to size x size and zero-padded by `pad`, their box rows (N, M, 5+) moved alike."""
    if size is not None and tuple(images.shape[-2:]) != (size, size):
        placed = [letterbox_padded(image, size, pad) for image in images]
        images, placement = torch.stack([canvas for canvas, _ in placed]), placed[0][1]  # one size in: one placement
    else:
        images, placement = F.pad(images, (pad, pad, pad, pad)) if pad else images, Letterbox(1.0, pad, pad)
    moved = rebox(targets, placement.forward(targets[..., 1:5]))
    return images, torch.where(targets[..., :1] >= 0, moved, targets)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Return the areas (...) of boxes (..., 4) x1y1x2y2."""
    return (boxes[..., 2] - boxes[..., 0]).clamp_min(0) * (boxes[..., 3] - boxes[..., 1]).clamp_min(0)


def rebox(rows: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Return box rows (..., 5 or 6) with new `boxes` (..., 4), an area column scaled as much as the box's area changed."""
    parts = [rows[..., :1], boxes]
    if rows.shape[-1] > AREA:
        ratio = box_area(boxes) / box_area(rows[..., 1:5]).clamp_min(1e-6)
        parts += [rows[..., AREA:AREA + 1] * ratio.unsqueeze(-1), rows[..., AREA + 1:]]
    return torch.cat(parts, -1)


def object_areas(rows: torch.Tensor) -> torch.Tensor:
    """Return the objects' areas (...) of box rows: the area column when there is one, else the boxes' areas."""
    return rows[..., AREA] if rows.shape[-1] > AREA else box_area(rows[..., 1:5])


#: Pictures smaller than this (the shorter side) are enlarged by a whole factor before drawing, so labels stay legible.
LEGIBLE_SIDE = 384


def draw_detections(image: torch.Tensor, boxes: torch.Tensor, labels: list[str], classes: torch.Tensor,
                    width: int = 2, enlarge: bool = True) -> torch.Tensor:
    """Return the uint8 image (C, H, W) as RGB with each box drawn in its class's colour and labelled.

    With `enlarge` a small image is first enlarged by a whole factor (nearest neighbour) to at least
    LEGIBLE_SIDE; without, it keeps its size (a grid of many pictures, an overlay beside a map).
    """
    rgb = image.expand(3, -1, -1) if image.shape[0] == 1 else image
    factor = max(1, -(-LEGIBLE_SIDE // min(rgb.shape[1:]))) if enlarge else 1
    if factor > 1:  # nearest neighbour: every pixel stays visible as it was
        rgb = rgb.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)
    colours = [PALETTE[int(c) % len(PALETTE)] for c in classes]
    if not len(boxes):
        return rgb.clone()
    return draw_bounding_boxes(rgb, boxes.float() * factor, labels, colors=colours, width=width)
