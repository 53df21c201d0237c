"""Parse an ops list from the command line, and draw several views of the same images under a policy."""

from __future__ import annotations

import torch

from cnnlab.data.augment.pipeline import Augmentation


def views(augmentation: Augmentation, images: torch.Tensor, labels: torch.Tensor, draws: int,
          seed: int = 0) -> torch.Tensor:
    """Return (N, 1 + draws, C, H, W) pixels in [0, 1]: each uint8 image, then `draws` augmented copies of it.

    Each draw augments the whole batch with its own seed, so an image's copies differ as they would
    in successive epochs. Ops that shrink images (center_crop) are shown padded back to size.
    """
    original = images.float() / 255
    columns = [original]
    for draw in range(draws):
        generator = torch.Generator(images.device).manual_seed(seed * 1_000_003 + draw)
        out, _ = augmentation.pixels(original, labels, generator)
        if out.shape[-2:] != original.shape[-2:]:
            dh, dw = original.shape[-2] - out.shape[-2], original.shape[-1] - out.shape[-1]
            out = torch.nn.functional.pad(out, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        columns.append(out)
    return torch.stack(columns, 1)
