"""Digit canvases: a deterministic per-pixel segmentation data set made from real digit images.

Each canvas (size x size, grey) holds 2 to 4 digits pasted at random places; where digits
overlap the brighter pixel wins. The target gives every ink pixel (intensity >= INK) the class
of the digit it came from (1 + the digit) and everything else 0, background: 11 classes. A
threshold alone cannot solve it (every digit's ink looks alike pixel by pixel); the net must
recognise the digit's shape around each pixel.
"""

from __future__ import annotations

import torch

INK = 128  # half intensity: the stroke, not its anti-aliased rim
CLASSES = ("background", *(str(d) for d in range(10)))


def digit_canvases(
    digits: torch.Tensor, labels: torch.Tensor, count: int, size: int = 64,
    per_canvas: tuple[int, int] = (2, 4), seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (uint8 canvases (count, 1, size, size), uint8 targets (count, size, size)) from digits (N, 1, h, w)."""
    generator = torch.Generator().manual_seed(seed)
    height, width = digits.shape[-2:]
    canvas = torch.zeros(count, size, size, dtype=torch.uint8)
    owner = torch.zeros(count, size, size, dtype=torch.uint8)  # 1 + digit of the brightest paste so far
    pasted = torch.randint(per_canvas[0], per_canvas[1] + 1, (count,), generator=generator)
    canvases = torch.arange(count).view(-1, 1, 1)
    for slot in range(per_canvas[1]):
        pick = torch.randint(0, len(digits), (count,), generator=generator)
        top = torch.randint(0, size - height + 1, (count,), generator=generator)
        left = torch.randint(0, size - width + 1, (count,), generator=generator)
        ink = digits[pick, 0] * (slot < pasted).view(-1, 1, 1).to(torch.uint8)  # (count, h, w); unused slots paste nothing
        rows = (top.view(-1, 1) + torch.arange(height)).view(count, height, 1)
        cols = (left.view(-1, 1) + torch.arange(width)).view(count, 1, width)
        here = canvas[canvases, rows, cols]  # (count, h, w)
        brighter = ink > here
        canvas[canvases, rows, cols] = torch.maximum(here, ink)
        mine = (labels[pick] + 1).to(torch.uint8).view(-1, 1, 1).expand(-1, height, width)
        owner[canvases, rows, cols] = torch.where(brighter, mine, owner[canvases, rows, cols])
    target = torch.where(canvas >= INK, owner, torch.zeros_like(owner))
    return canvas.unsqueeze(1), target
