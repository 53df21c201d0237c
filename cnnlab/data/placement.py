"""Where a data set lives while training: resident on the device as uint8, or streamed by workers.

A set that fits (a quarter of a GPU's free memory, or 4 GB on a CPU) is resized and padded once
and held whole; a larger one, or any with `stream`, is read batch by batch by DataLoader workers
that resize and pad the same way (cnnlab.data.loader). Both paths give the same run.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from cnnlab.data.images import prepare_images
from cnnlab.data.loader import StreamedImages
from cnnlab.data.sources import ImageSet
from cnnlab.errors import CnnlabError

RESIDENT_BUDGET_CPU = 4 << 30  # bytes of uint8 images kept in memory before streaming instead


def resident_budget(device: torch.device) -> int:
    """Return how many bytes of uint8 images may live on `device` (a quarter of a GPU's free memory)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // 4
    return RESIDENT_BUDGET_CPU


def too_big(data: ImageSet | StreamedImages, size: int | None, pad: int, device: torch.device) -> bool:
    """Return whether `data`, resized and padded, exceeds what may stay resident on `device`."""
    if isinstance(data, StreamedImages):
        return True
    channels, height, _ = data.images.shape[1:]
    side = (size or height) + 2 * pad
    return len(data) * channels * side * side > resident_budget(device)


def place(data: ImageSet | StreamedImages, size: int | None, pad: int, stream: bool,
          workers: int = 4) -> ImageSet | StreamedImages:
    """Return `data` resized and padded once and held whole, or set up to be streamed by workers."""
    if isinstance(data, StreamedImages):  # files on disk: always streamed
        return replace(data, size=size, pad=pad, workers=workers, unreadable=set())
    if stream:
        return StreamedImages(data.images, data.labels, data.classes, data.images.shape[1], size, pad, workers)
    return ImageSet(prepare_images(data.images, size, pad), data.labels, data.classes, data.skipped)


def model_input_size(data: ImageSet | StreamedImages) -> tuple[int, ...]:
    """Return (C, H, W) of the images the model will see, once placed."""
    if isinstance(data, ImageSet):
        return tuple(data.images.shape[1:])
    if data.size is not None:
        height = width = data.size
    elif isinstance(data.source, torch.Tensor):
        height, width = data.source.shape[2:]
    else:
        raise CnnlabError("streamed image files need one size: set input_size=N (e.g. input_size=224)")
    return (data.channels, height + 2 * data.pad, width + 2 * data.pad)


def read_size(data: ImageSet | StreamedImages, resize: int | None) -> tuple[int, ...]:
    """Return (C, H, W) of the images as read (files of mixed sizes: as resized), before padding."""
    if isinstance(data, ImageSet):
        return tuple(data.images.shape[1:])
    if isinstance(data.source, torch.Tensor):
        return tuple(data.source.shape[1:])
    return (data.channels, resize, resize)
