"""Data sources: each turns a spec into uint8 images (N, C, H, W), int64 labels and class names."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class ImageSet:
    """Images held as uint8 (N, C, H, W) with int64 labels and the class names they index."""

    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> ImageSet:
        """Return the images and labels at `index`, with the same classes."""
        return ImageSet(self.images[index], self.labels[index], self.classes)


def load_digits() -> ImageSet:
    """Return scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes) as uint8."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise CnnlabError(
            "the digits data set needs scikit-learn: pip install 'cnnlab[digits]'"
        ) from None
    bunch = sklearn_digits()
    # Pixels are counts 0..16 of an 4x4 block of the 32x32 scan; scale to the 0..255 of images.
    pixels = torch.as_tensor(bunch.images, dtype=torch.float32) * (255.0 / 16.0)
    images = pixels.round().clamp(0, 255).to(torch.uint8).unsqueeze(1)  # (N, 1, 8, 8)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    return ImageSet(images, labels, tuple(str(d) for d in range(10)))


def split(data: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Return (rest, held-out) with `fraction` of the images held out by a seeded permutation."""
    if not 0.0 < fraction < 1.0:
        raise CnnlabError(f"split fraction must lie in (0, 1), got {fraction}")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    held = int(round(len(data) * fraction))
    return data.subset(order[held:]), data.subset(order[:held])


def load(spec: str) -> ImageSet:
    """Return the data set named by `spec` (for now: digits)."""
    if spec == "digits":
        return load_digits()
    raise CnnlabError(
        f"unknown data spec {spec!r}: this version reads 'digits' only "
        "(MNIST, CIFAR and image folders arrive with the data issue)"
    )
