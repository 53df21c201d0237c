"""Where a data set lives while training: resident on the device as uint8, or streamed by workers.

A set that fits (a quarter of a GPU's free memory, or 4 GB on a CPU) is resized and padded once
and held whole; a larger one, or any with `stream`, is read batch by batch by DataLoader workers
that resize and pad the same way (cnnlab.data.loader). Both paths give the same run.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from cnnlab.data.augment.targets import TargetKind, kind_of
from cnnlab.data.boxes import place_with_boxes
from cnnlab.data.collection import Images
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


def too_big(data: Images, size: int | None, pad: int, device: torch.device) -> bool:
    """Return whether `data`, resized and padded, exceeds what may stay resident on `device`."""
    if isinstance(data, StreamedImages):
        return True
    channels, height, _ = data.images.shape[1:]
    side = (size or height) + 2 * pad
    return len(data) * channels * side * side > resident_budget(device)


def available_bytes(device: torch.device) -> int:
    """Return the memory free now on `device` (a GPU's free memory, or the host's available RAM)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:  # MemAvailable counts the page cache the kernel would give back; "free" memory alone does not
        with open("/proc/meminfo") as handle:
            line = next(line for line in handle if line.startswith("MemAvailable:"))
        return int(line.split()[1]) * 1024
    except (OSError, StopIteration, ValueError, IndexError):  # not Linux: assume the CPU budget
        return RESIDENT_BUDGET_CPU


def check_fits(data: Images, size: int | None, pad: int, batch_size: int, device: torch.device) -> None:
    """Raise one line, before anything is allocated, when one float32 batch of the prepared images cannot fit."""
    if isinstance(data, StreamedImages) and data.size is None and not isinstance(data.source, torch.Tensor):
        return  # files of unknown size: the streamed path refuses them without input_size anyway
    channels, height, width = data.images.shape[1:] if isinstance(data, ImageSet) else (
        (data.channels, size, size) if size else data.source.shape[1:])
    height, width = (size or height) + 2 * pad, (size or width) + 2 * pad
    needed = 4 * channels * height * width * batch_size  # one float32 batch, before any activation
    if needed > available_bytes(device) // 2:
        raise CnnlabError(
            f"images of {channels}x{height}x{width} (input_size={size}, input_pad={pad}) make one batch of "
            f"{batch_size} need {needed / 1e9:.1f} GB: choose a smaller input_size, input_pad or batch_size"
        )


def place(data: Images, size: int | None, pad: int, stream: bool,
          workers: int = 4) -> Images:
    """Return `data` resized and padded once and held whole, or set up to be streamed by workers."""
    if isinstance(data, StreamedImages):  # files on disk: always streamed
        return replace(data, size=size, pad=pad, workers=workers, unreadable=set())
    if stream:
        if data.soft is not None:
            raise CnnlabError("soft targets (pseudo-labels) are held with images in memory: set runtime.stream=false")
        return StreamedImages(data.images, data.labels, data.classes, data.images.shape[1], size, pad, workers)
    if kind_of(data.labels) is TargetKind.BOXES:  # box rows: they move with their images
        return ImageSet(*place_with_boxes(data.images, data.labels, size, pad), data.classes, data.skipped)
    return ImageSet(prepare_images(data.images, size, pad), data.labels, data.classes, data.skipped, data.soft)


def model_input_size(data: Images) -> tuple[int, ...]:
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


def read_size(data: Images, resize: int | None) -> tuple[int, ...]:
    """Return (C, H, W) of the images as read (files of mixed sizes: as resized), before padding."""
    if isinstance(data, ImageSet):
        return tuple(data.images.shape[1:])
    if isinstance(data.source, torch.Tensor):
        return tuple(data.source.shape[1:])
    return (data.channels, resize, resize)
