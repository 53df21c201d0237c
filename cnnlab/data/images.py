"""Readers for the on-disk formats: IDX (MNIST) and class-per-folder image trees (plain or .tar.gz)."""

from __future__ import annotations

import gzip
import io
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from cnnlab.errors import CnnlabError

T = TypeVar("T")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
_IDX_DTYPES = {0x08: np.uint8}
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # PIL's modes of 16-bit grey PNG and TIFF


def read_idx(path: Path) -> np.ndarray:
    """Return the array an IDX file holds (gzipped or not), checking its header against its size."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as error:  # gzip.BadGzipFile is an OSError; a cut-off stream an EOFError
        raise CnnlabError(f"{path} cannot be read ({error or type(error).__name__}): delete it and fetch it again") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise CnnlabError(f"{path} is not an unsigned-byte IDX file: check the file or download it again")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) if shape else 0
    if len(data) - offset != expected:
        raise CnnlabError(f"{path} is truncated: its header promises {expected} values, it holds {len(data) - offset}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def resize_images(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Return uint8 images (N, C, H, W) resized to height x width (torchvision's antialiased resize), or as given."""
    if tuple(images.shape[-2:]) == (height, width):
        return images
    from torchvision.transforms.v2 import functional as TF

    return TF.resize(images, [height, width], antialias=True)


def prepare_images(images: torch.Tensor, size: int | None, pad: int) -> torch.Tensor:
    """Return uint8 images (N, C, H, W) resized to size x size (antialiased) and zero-padded by `pad`."""
    if size is not None:
        images = resize_images(images, size, size)
    if pad:
        images = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    return images


def read_image_file(name: str | Path, channels: int) -> torch.Tensor:
    """Return an image file a user named as uint8 (C, H, W), or one line saying why it cannot be read."""
    from cnnlab.errors import CnnlabError

    if Path(name).is_dir():
        raise CnnlabError(f"{name} is a folder: give PNG or JPEG files")
    image = read_image(Path(name), channels)
    if image is None:
        raise CnnlabError(f"cannot read image {name}: give a PNG or JPEG file")
    return image


def write_png(image: torch.Tensor, path: str | Path) -> None:
    """Write a uint8 image (C, H, W), grey or RGB, as a PNG file (Pillow: torchvision's encoders are deprecated)."""
    from PIL import Image

    picture = image.detach().cpu()
    array = picture[0].numpy() if picture.shape[0] == 1 else picture.permute(1, 2, 0).contiguous().numpy()
    Image.fromarray(array).save(path, format="PNG")


def decode(payload: bytes, mode: str = "RGB") -> np.ndarray | None:
    """Return an (H, W, 3) uint8 image ((H, W) for mode "L"), or None when the bytes are not a readable image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as image:
            if image.mode in SIXTEEN_BIT_MODES:
                # convert() would clip 16-bit grey at 255 (a white image); scale 0..65535 to 0..255 instead.
                grey = np.clip(np.rint(np.asarray(image, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
                return grey if mode == "L" else np.repeat(grey[..., None], 3, axis=2)
            return np.asarray(image.convert(mode))  # palette, CMYK, animated (frame 0): all to 8-bit
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None  # not an image, damaged, or a header claiming more pixels than PIL's bomb limit


def read_image(path: Path, channels: int = 3) -> torch.Tensor | None:
    """Return a file's image as uint8 (C, H, W), or None when it is unreadable (one decoder: `decode`)."""
    try:
        array = decode(path.read_bytes(), "L" if channels == 1 else "RGB")
    except OSError:
        return None
    if array is None:
        return None
    return torch.from_numpy(array.copy()).view(array.shape[0], array.shape[1], -1).permute(2, 0, 1)


def list_image_tree(root: Path, prefixes: tuple[str, ...] = ("",)) -> dict[str, dict[str, list[Path]]]:
    """Return {part: {class name: sorted image files}} of root/[part/]class/, refusing missing parts and empty classes."""
    found: dict[str, dict[str, list[Path]]] = {}
    for prefix in prefixes:
        base = root / prefix if prefix else root
        if not base.is_dir():
            raise CnnlabError(f"{base} does not exist: expected class sub-folders there")
        found[prefix] = {
            folder.name: sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            for folder in sorted(p for p in base.iterdir() if p.is_dir())
        }
        empty = [name for name, files in found[prefix].items() if not files]
        if empty:
            raise CnnlabError(f"class folder {base / empty[0]} holds no images: remove it or add images")
    return found


def by_label(found: dict[str, dict[str, list[T]]]) -> tuple[tuple[str, ...], dict[str, tuple[list[T], list[int]]]]:
    """Return (class names shared by all parts, {part: (items in class order, their labels)})."""
    classes = tuple(sorted({name for by_class in found.values() for name in by_class}))  # CIFAR's order too
    parts = {
        prefix: ([item for name in classes for item in by_class.get(name, [])],
                 [index for index, name in enumerate(classes) for _ in by_class.get(name, [])])
        for prefix, by_class in found.items()
    }
    return classes, parts


def _folder_entries(root: Path, prefixes: tuple[str, ...]) -> Iterator[tuple[str, str, bytes]]:
    """Yield (part, class name, bytes) for every image under root/<part>/<class>/."""
    for prefix, by_class in list_image_tree(root, prefixes).items():
        for class_name, files in by_class.items():
            for file in files:
                yield prefix, class_name, file.read_bytes()


def _archive_entries(archive: Path, prefixes: tuple[str, ...]) -> Iterator[tuple[str, str, bytes]]:
    """Yield (part, class name, bytes) for members [...]/<part>/<class>/<file> of a tar archive, in one pass."""
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 2 or Path(member.name).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            prefix = "" if prefixes == ("",) else (parts[-3] if len(parts) >= 3 else None)
            if prefix not in prefixes:
                continue
            handle = tar.extractfile(member)
            if handle is not None:
                yield prefix, parts[-2], handle.read()


Part = tuple[torch.Tensor, torch.Tensor, tuple[str, ...], int]


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    """Return an (H, W, C) uint8 image resized to size x size by the one resize the loaders use."""
    tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1).unsqueeze(0)  # (1, C, H, W), a writable copy
    return resize_images(tensor, size, size)[0].permute(1, 2, 0).numpy()


def read_image_tree(source: Path, prefixes: tuple[str, ...] = ("",), size: int | None = None) -> dict[str, Part]:
    """Return {part: (uint8 images (N, 3, H, W), labels, class names, skipped count)} of a class-folder tree.

    `source` is a folder or a tar(.gz) archive of [part/]class/file; all parts are read in one
    pass and share one class list. Unreadable images are skipped and counted, never fatal; a
    class left with none is an error, as an empty folder is. With `size`, every image is resized
    to size x size as it is read, so images of mixed sizes make one set.
    """
    try:
        is_tar = not source.is_dir() and tarfile.is_tarfile(source)
    except OSError as error:
        raise CnnlabError(f"{source} cannot be read ({error.strerror or error}): check the path") from None
    if not source.is_dir() and not is_tar:
        raise CnnlabError(f"{source} is neither a folder nor a tar archive of class folders")
    entries = _folder_entries(source, prefixes) if source.is_dir() else _archive_entries(source, prefixes)
    found: dict[str, dict[str, list[np.ndarray]]] = {prefix: {} for prefix in prefixes}
    skipped = dict.fromkeys(prefixes, 0)
    try:
        for prefix, class_name, payload in entries:
            image = decode(payload)
            images = found[prefix].setdefault(class_name, [])
            if image is None:
                skipped[prefix] += 1
            else:
                images.append(image if size is None else _resized(image, size))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise CnnlabError(f"{source} is damaged or cut short ({error or type(error).__name__}): fetch it again") from None
    for prefix, by_class in found.items():
        empty = [name for name, images in by_class.items() if not images]
        if empty:
            where = Path(source) / prefix / empty[0] if prefix else Path(source) / empty[0]
            raise CnnlabError(f"class folder {where} holds no readable images: remove it or add images")
    classes, parts = by_label(found)
    result = {}
    for prefix, by_class in found.items():
        where = f"{source}/{prefix}" if prefix else str(source)
        if not by_class:
            raise CnnlabError(f"no images found in {where}: expected class/image files")
        sizes = {img.shape for imgs in by_class.values() for img in imgs}
        if len(sizes) > 1:
            shown = ", ".join("x".join(map(str, s[:2])) for s in sorted(sizes)[:3])
            raise CnnlabError(f"images in {where} have different sizes ({shown}...): set input_size=N to resize them as they are read")
        images, labels = parts[prefix]
        tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
        result[prefix] = (tensor, torch.tensor(labels, dtype=torch.int64), classes, skipped[prefix])
    return result
