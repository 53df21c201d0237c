"""Readers for the on-disk formats: IDX (MNIST) and class-per-folder image trees (plain or .tar.gz)."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from cnnlab.errors import CnnlabError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """Return the array an IDX file holds (gzipped or not), checking its header against its size."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise CnnlabError(f"{path} is not an unsigned-byte IDX file: check the file or download it again")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) if shape else 0
    if len(data) - offset != expected:
        raise CnnlabError(f"{path} is truncated: its header promises {expected} values, it holds {len(data) - offset}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _decode(payload: bytes) -> np.ndarray | None:
    """Return an (H, W, 3) uint8 image, or None when the bytes are not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def _folder_entries(root: Path) -> Iterator[tuple[str, str, bytes]]:
    """Yield (class name, file name, bytes) for every image under root/<class>/."""
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                yield class_dir.name, file.name, file.read_bytes()


def _archive_entries(archive: Path, prefix: str) -> Iterator[tuple[str, str, bytes]]:
    """Yield (class name, file name, bytes) for members <prefix>/<class>/<file> of a tar archive."""
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 3 or Path(member.name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if prefix and parts[-3] != prefix:
                continue
            handle = tar.extractfile(member)
            if handle is not None:
                yield parts[-2], parts[-1], handle.read()


def read_image_tree(source: Path, prefix: str = "") -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...], int]:
    """Return (uint8 images (N, 3, H, W), labels, class names, skipped count) of a class-per-folder tree.

    `source` is a folder of class sub-folders, or a tar(.gz) archive whose members are
    [prefix/]class/file. Unreadable images are skipped and counted, never fatal.
    """
    if source.is_dir():
        root = source / prefix if prefix else source
        if not root.is_dir():
            raise CnnlabError(f"{root} does not exist: expected class sub-folders there")
        empty = [p.name for p in root.iterdir() if p.is_dir() and not any(q.suffix.lower() in IMAGE_SUFFIXES for q in p.iterdir())]
        if empty:
            raise CnnlabError(f"class folder {root / empty[0]} holds no images: remove it or add images")
        entries = _folder_entries(root)
    elif tarfile.is_tarfile(source):
        entries = _archive_entries(source, prefix)
    else:
        raise CnnlabError(f"{source} is neither a folder nor a tar archive of class folders")
    by_class: dict[str, list[np.ndarray]] = {}
    skipped = 0
    for class_name, _, payload in entries:
        image = _decode(payload)
        if image is None:
            skipped += 1
            by_class.setdefault(class_name, [])
            continue
        by_class.setdefault(class_name, []).append(image)
    if not by_class:
        raise CnnlabError(f"no images found in {source}{'/' + prefix if prefix else ''}: expected class/image files")
    classes = tuple(sorted(by_class))  # alphabetical order is CIFAR-10's official order too
    sizes = {img.shape for imgs in by_class.values() for img in imgs}
    if len(sizes) > 1:
        shown = ", ".join("x".join(map(str, s[:2])) for s in sorted(sizes)[:3])
        raise CnnlabError(f"images in {source} have different sizes ({shown}...): resize them to one size first")
    images, labels = [], []
    for index, name in enumerate(classes):
        images += by_class[name]
        labels += [index] * len(by_class[name])
    array = np.stack(images)  # (N, H, W, 3)
    tensor = torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
    return tensor, torch.tensor(labels, dtype=torch.int64), classes, skipped
