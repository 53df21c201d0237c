"""Streaming data: a DataLoader path for image sets too large to hold on the training device.

Small sets live on the device as uint8 (cnnlab.data.placement). Larger ones, an upsampled
CIFAR (50,000 x 3 x 224 x 224 is 7.5 GB) or a folder of many files, are read here instead:
workers decode (PIL, as the eager reader does) and resize / pad (prepare_images: torchvision v2's resize) each image,
batches arrive as uint8 in pinned memory, and normalisation and augmentation stay on the
device, exactly as for resident data, so both paths train the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from cnnlab.data.images import by_label, list_image_tree, prepare_images, read_image
from cnnlab.errors import CnnlabError

STATISTICS_IMAGES = 60_000  # all of MNIST or CIFAR; a bounded one-time pass over anything larger


def sample_indices(total: int, count: int | None = None, seed: int = 0) -> torch.Tensor:
    """Return the sorted indices of a seeded sample of min(count, total) images (all when it covers them).

    Resident and streamed sets draw the same sample, so their normalisation is the same.
    """
    count = STATISTICS_IMAGES if count is None else count
    if count >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:count].sort().values


class _Images(Dataset):
    """(uint8 image, label) items from a uint8 tensor or image files, resized and padded."""

    def __init__(self, source: torch.Tensor | Sequence[Path], labels: torch.Tensor, channels: int,
                 size: int | None, pad: int) -> None:
        self.source, self.labels, self.channels, self.size, self.pad = source, labels, channels, size, pad

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, int, int]:
        if isinstance(self.source, torch.Tensor):
            image: torch.Tensor | None = self.source[index]
        else:
            image = read_image(self.source[index], self.channels)
        if image is not None:
            image = prepare_images(image[None], self.size, self.pad)[0]  # the resident path's own resize and pad
        return image, int(self.labels[index]), index


def _collate(items: list[tuple[torch.Tensor | None, int, int]]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Return (uint8 images, labels, indices of unreadable images) of a batch, leaving those out."""
    good = [(image, label) for image, label, _ in items if image is not None]
    unreadable = [index for image, _, index in items if image is None]
    if not good:
        return torch.empty(0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64), unreadable
    sizes = {tuple(image.shape) for image, _ in good}
    if len(sizes) > 1:
        raise CnnlabError(f"images of different sizes {sorted(sizes)[:2]} in one batch: set input_size=N to resize them")
    images = torch.stack([image for image, _ in good])
    return images, torch.tensor([label for _, label in good], dtype=torch.int64), unreadable


@dataclass
class StreamedImages:
    """An image set read batch by batch through DataLoader workers: uint8 tensor or files on disk."""

    source: torch.Tensor | tuple[Path, ...]  # uint8 (N, C, H, W) in host memory, or one file per image
    labels: torch.Tensor  # int64 (N,)
    classes: tuple[str, ...]
    channels: int = 3
    size: int | None = None  # resize to size x size in the workers
    pad: int = 0  # then zero-pad each side
    workers: int = 4
    unreadable: set[int] = field(default_factory=set)  # files found unreadable so far (read only while training)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def skipped(self) -> int:
        """Return how many of the images have turned out unreadable so far."""
        return len(self.unreadable)

    def subset(self, index: torch.Tensor, *, skipped: int = 0) -> StreamedImages:
        """Return the items at `index`, read the same way."""
        source = self.source[index] if isinstance(self.source, torch.Tensor) else tuple(self.source[i] for i in index.tolist())
        return StreamedImages(source, self.labels[index], self.classes, self.channels, self.size, self.pad, self.workers)

    def batches(self, batch_indices: Sequence[Sequence[int]], device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (uint8 images, labels) on `device` for each list of indices, read by the workers."""
        loader = DataLoader(
            _Images(self.source, self.labels, self.channels, self.size, self.pad),
            batch_sampler=[list(map(int, b)) for b in batch_indices],
            num_workers=min(self.workers, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1),
            collate_fn=_collate,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
            # Its own generator: otherwise each new iterator draws its worker seed from the global
            # RNG, and dropout in a streamed run would differ from the same run held resident.
            generator=torch.Generator().manual_seed(0),
        )
        for images, labels, unreadable in loader:
            self.unreadable.update(unreadable)
            # Empty batches too: data-parallel ranks must agree on every step (the trainer skips them).
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)

    def sample_batches(self, count: int | None = None, seed: int = 0) -> Iterator[torch.Tensor]:
        """Yield the uint8 images the normalisation statistics come from, in batches (see sample_indices)."""
        for images, _ in self.batches(sample_indices(len(self), count, seed).split(256), torch.device("cpu")):
            yield images

    def resident(self) -> None:
        """Return None: these images are read from their source batch by batch, never held whole."""
        return None


def scan_image_tree(root: Path, prefixes: tuple[str, ...] = ("",)) -> dict[str, tuple[tuple[Path, ...], torch.Tensor, tuple[str, ...]]]:
    """Return {part: (image files, labels, class names)} of root/[part/]class/file, without decoding them."""
    classes, parts = by_label(list_image_tree(root, prefixes))
    result = {}
    for prefix, (files, labels) in parts.items():
        if not files:
            raise CnnlabError(f"no images found in {root / prefix}: expected class/image files")
        result[prefix] = (tuple(files), torch.tensor(labels, dtype=torch.int64), classes)
    return result
