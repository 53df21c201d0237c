"""Digit scenes: a deterministic box-detection data set made from real digit images (mnist-det, digits-det).

Each canvas (size x size, grey) holds 1 to 6 digits, each digit image scaled to a side drawn
from `scale` and placed by rejection so that no two boxes overlap by IoU above `max_iou`; where
digits touch, the brighter pixel wins. A digit's box is the extent of its ink (intensity >=
INK) plus one pixel on each side, widened about its centre to at least MIN_SIDE pixels (a "1" is
thin) and clipped to the canvas. Targets are one padded (count, per_canvas_max, 5) float tensor
of (class, x1, y1, x2, y2) rows, class -1 padding, so a batch stays one tensor on the device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

INK = 128
MIN_SIDE = 4.0
CLASSES = tuple(str(d) for d in range(10))


def ink_box(patch: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor | None:
    """Return the box (x1, y1, x2, y2) of a pasted patch's ink on the canvas, None when it has none."""
    rows = torch.nonzero((patch >= INK).any(1)).squeeze(1)
    cols = torch.nonzero((patch >= INK).any(0)).squeeze(1)
    if not len(rows):
        return None
    # Pixel k covers [k, k + 1): the extent of the ink is [first, last + 1), one more pixel each side.
    x1, x2 = left + float(cols[0]) - 1, left + float(cols[-1]) + 2
    y1, y2 = top + float(rows[0]) - 1, top + float(rows[-1]) + 2
    if x2 - x1 < MIN_SIDE:
        middle = (x1 + x2) / 2
        x1, x2 = middle - MIN_SIDE / 2, middle + MIN_SIDE / 2
    if y2 - y1 < MIN_SIDE:
        middle = (y1 + y2) / 2
        y1, y2 = middle - MIN_SIDE / 2, middle + MIN_SIDE / 2
    return torch.tensor([x1, y1, x2, y2]).clamp(0, size)


def digit_scenes(digits: torch.Tensor, labels: torch.Tensor, count: int, size: int = 128,
                 per_canvas: tuple[int, int] = (1, 6), scale: tuple[int, int] = (16, 48), max_iou: float = 0.1,
                 seed: int = 0, tries: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (uint8 canvases (count, 1, size, size), float targets (count, per_canvas[1], 5)) from digits (N, 1, h, w)."""
    generator = torch.Generator().manual_seed(seed)
    canvases = torch.zeros(count, 1, size, size, dtype=torch.uint8)
    targets = torch.full((count, per_canvas[1], 5), -1.0)
    wanted = torch.randint(per_canvas[0], per_canvas[1] + 1, (count,), generator=generator)
    for index in range(count):
        boxes: list[torch.Tensor] = []
        for _ in range(int(wanted[index])):
            pick = int(torch.randint(0, len(digits), (1,), generator=generator))
            for _ in range(tries):
                side = int(torch.randint(scale[0], scale[1] + 1, (1,), generator=generator))
                top, left = (int(v) for v in torch.randint(0, size - side + 1, (2,), generator=generator))
                patch = F.interpolate(digits[pick:pick + 1].float(), size=(side, side), mode="bilinear",
                                      antialias=True, align_corners=False)[0, 0].round().clamp(0, 255).to(torch.uint8)
                box = ink_box(patch, top, left, size)
                if box is None or (boxes and float(box_iou(box[None], torch.stack(boxes)).max()) > max_iou):
                    continue
                region = canvases[index, 0, top:top + side, left:left + side]
                canvases[index, 0, top:top + side, left:left + side] = torch.maximum(region, patch)
                targets[index, len(boxes)] = torch.cat([labels[pick:pick + 1].float(), box])
                boxes.append(box)
                break
    return canvases, targets
