"""Images: the one type every image set honours, held in memory (ImageSet) or streamed (StreamedImages).

Code that reads a split names this protocol, not the union of its two implementations, and asks
`resident()` for the images in memory instead of probing for an attribute.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Images(Protocol):
    """Images with their labels and class names, read in batches; `resident()` is their tensor when held in memory."""

    labels: torch.Tensor  # int64 (N,) class per image, or uint8 (N, H, W) class per pixel
    classes: tuple[str, ...]

    def __len__(self) -> int:
        """Return how many images the set holds."""
        ...

    @property
    def skipped(self) -> int:
        """Return how many images were left out as unreadable."""
        ...

    def subset(self, index: torch.Tensor, *, skipped: int = 0) -> Images:
        """Return the images at `index`, read the same way."""
        ...

    def batches(self, batch_indices: Iterable, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (uint8 images, targets) on `device` for each batch of indices."""
        ...

    def sample_batches(self, count: int | None = None, seed: int = 0) -> Iterator[torch.Tensor]:
        """Yield the uint8 images normalisation statistics come from."""
        ...

    def resident(self) -> torch.Tensor | None:
        """Return the uint8 images (N, C, H, W) when held in memory, else None (streamed from files)."""
        ...
