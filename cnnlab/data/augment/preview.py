"""Parse an ops list from the command line, and draw several views of the same images under a policy."""

from __future__ import annotations

import torch

from cnnlab.data.augment.pipeline import Augmentation
from cnnlab.data.augment.targets import IGNORE, TargetKind, kind_of
from cnnlab.data.boxes import PALETTE, draw_detections

#: A mask pixel IGNORE is shown in this colour (magenta: no class has it).
IGNORE_COLOUR = (1.0, 0.0, 1.0)


def views(augmentation: Augmentation, images: torch.Tensor, labels: torch.Tensor, draws: int,
          seed: int = 0) -> torch.Tensor:
    """Return (N, 1 + draws, C, H, W) pixels in [0, 1]: each uint8 image, then `draws` augmented copies of it.

    Each draw augments the whole batch with its own seed, so an image's copies differ as they would
    in successive epochs. Ops that shrink images (center_crop) are shown padded back to size. Boxes
    (detection data) are drawn on every view where the ops moved them, and masks (segmentation)
    tint their view by class, IGNORE in magenta: the pictures show that targets move with images.
    """
    original = images.float() / 255
    columns = [_marked(original, labels)]
    for draw in range(draws):
        generator = torch.Generator(images.device).manual_seed(seed * 1_000_003 + draw)
        out, moved = augmentation.pixels(original, labels, generator)
        out = _marked(out, moved)
        if out.shape[-2:] != original.shape[-2:]:
            dh, dw = original.shape[-2] - out.shape[-2], original.shape[-1] - out.shape[-1]
            out = torch.nn.functional.pad(out, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        columns.append(out)
    width = max(column.shape[1] for column in columns)
    return torch.stack([c.expand(-1, width, -1, -1) if c.shape[1] != width else c for c in columns], 1)


def _marked(pixels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """Return the pixels with their boxes drawn or their masks tinted (RGB); as they are for labels."""
    if targets is None or kind_of(targets) is TargetKind.LABELS:
        return pixels
    if kind_of(targets) is TargetKind.BOXES:
        drawn = []
        for image, rows in zip(pixels, targets, strict=True):
            rows = rows[rows[:, 0] >= 0]
            uint8 = image.mul(255).round().clamp(0, 255).to(torch.uint8)
            picture = draw_detections(uint8, rows[:, 1:5], [str(int(c)) for c in rows[:, 0]], rows[:, 0].long(), width=1,
                                      enlarge=False)
            drawn.append(picture.float() / 255)
        return torch.stack(drawn)
    rgb = pixels.expand(-1, 3, -1, -1) if pixels.shape[1] == 1 else pixels
    palette = torch.tensor([[int(h[i : i + 2], 16) / 255 for i in (1, 3, 5)] for h in PALETTE])
    classes = targets.long()
    colour = palette[(classes - 1).clamp_min(0) % len(palette)].permute(0, 3, 1, 2)  # class 0 is background
    colour = torch.where((classes == IGNORE).unsqueeze(1), torch.tensor(IGNORE_COLOUR).view(1, 3, 1, 1), colour)
    tinted = (classes > 0).unsqueeze(1)
    return torch.where(tinted, 0.5 * rgb + 0.5 * colour, rgb)
