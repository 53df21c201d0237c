"""Test-time augmentation: the views of a batch whose logits the final score averages."""

from __future__ import annotations

from enum import StrEnum

import torch
import torch.nn.functional as F


class TTA(StrEnum):
    """Test-time views of the final test score, whose logits are averaged."""

    NONE = "none"
    FLIP = "flip"  # the image and its mirror (not for digits or text)
    SHIFT = "shift"  # the image and two copies shifted by one pixel
    FLIP_SHIFT = "flip+shift"  # the image, its mirror, each shifted by one pixel


def tta_views(x: torch.Tensor, mode: TTA | str = TTA.NONE) -> list[torch.Tensor]:
    """Return the test-time views of a batch (B, C, H, W): itself, plus mirror and/or 1-pixel shifts."""
    mode = TTA(mode)
    views = [x]
    if mode in (TTA.FLIP, TTA.FLIP_SHIFT):
        views.append(x.flip(3))
    if mode in (TTA.SHIFT, TTA.FLIP_SHIFT):
        height, width = x.shape[2:]
        # Zero borders, as the training translations pad (zero is the mean after normalisation).
        padded = F.pad(x, (1, 1, 1, 1))
        views.append(padded[:, :, 0:height, 0:width])  # content moves 1 down and right
        source = padded if mode is TTA.SHIFT else F.pad(x.flip(3), (1, 1, 1, 1))
        views.append(source[:, :, 2 : height + 2, 2 : width + 2])  # (the mirror) moves 1 up and left
    return views
