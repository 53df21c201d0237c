"""Data sources: each turns a spec into uint8 images (N, C, H, W), int64 labels and class names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.data.files import digest, download, find_file, search_dirs
from cnnlab.data.images import read_idx, read_image_tree
from cnnlab.errors import CnnlabError

# MD5 of the *decompressed* official files (LeCun et al.), so re-gzipped copies verify too.
MNIST_FILES = {
    "train-images": ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels": ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
    "test-images": ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
    "test-labels": ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
}
# The PyTorch mirror first, then the original site (which often refuses scripted downloads).
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
# The lossy JPEG CIFAR-10 tree of ../shared/data (SHA-256 from its SHA256SUMS).
CIFAR10_JPEG = ("cifar10-jpeg.tar.gz", "d34c68f61cca57aa9144c8f25bda427abb9921bd642d5857a2fc1a6b4416f965")


@dataclass(frozen=True)
class ImageSet:
    """Images held as uint8 (N, C, H, W) with int64 labels and the class names they index."""

    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)
    classes: tuple[str, ...]
    skipped: int = 0  # unreadable images left out while reading

    def __post_init__(self) -> None:
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise CnnlabError(
                f"labels run from {int(self.labels.min())} to {int(self.labels.max())} but there are "
                f"{len(self.classes)} classes: the label file does not belong to these images"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor, *, skipped: int = 0) -> ImageSet:
        """Return the images and labels at `index`, with the same classes."""
        return ImageSet(self.images[index], self.labels[index], self.classes, skipped)


@dataclass(frozen=True)
class DataSplits:
    """A training set and a separate test set with the same classes."""

    train: ImageSet
    test: ImageSet

    @property
    def skipped(self) -> int:
        """Return the unreadable images left out of both parts."""
        return self.train.skipped + self.test.skipped


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
    # The skipped count belongs to the source read once; it travels with the larger part.
    return data.subset(order[held:], skipped=data.skipped), data.subset(order[:held])


def _mnist_file(stem: str, md5: str, data_dir: str | Path | None, allow_download: bool) -> Path:
    """Return a verified MNIST file (gzipped or not), downloading it into the cache if missing."""
    dirs = search_dirs(data_dir)
    path = find_file([stem + ".gz", stem], dirs, "mnist")
    if path is None:
        target = dirs[-1] / "mnist" / (stem + ".gz")
        try:
            if not allow_download:
                raise CnnlabError("downloads are switched off")
            download([mirror + stem + ".gz" for mirror in MNIST_MIRRORS], target)
        except CnnlabError as error:
            looked = ", ".join(str(d) for d in dirs)
            raise CnnlabError(
                f"MNIST file {stem}(.gz) not found in {looked} (or their mnist/ folders) and {error}: "
                "put the four IDX files in one of them, or pass --data-dir / set CNNLAB_DATA"
            ) from None
        path = target
    actual = digest(path, "md5", decompress=path.suffix == ".gz")
    if actual != md5:
        raise CnnlabError(
            f"{path} has MD5 {actual} (of its decompressed bytes), not the official {md5}: "
            "the file is damaged or not MNIST; delete it and fetch it again"
        )
    return path


def load_mnist(data_dir: str | Path | None = None, *, allow_download: bool = True) -> DataSplits:
    """Return MNIST's 60,000 training and 10,000 test digits (28x28 grey) as uint8, checksum-verified."""
    arrays = {key: read_idx(_mnist_file(stem, md5, data_dir, allow_download)) for key, (stem, md5) in MNIST_FILES.items()}
    classes = tuple(str(d) for d in range(10))

    def part(prefix: str) -> ImageSet:
        images = torch.from_numpy(arrays[f"{prefix}-images"].copy()).unsqueeze(1)  # (N, 1, 28, 28)
        labels = torch.from_numpy(arrays[f"{prefix}-labels"].astype("int64"))
        if len(images) != len(labels):
            raise CnnlabError(f"MNIST {prefix}: {len(images)} images but {len(labels)} labels")
        return ImageSet(images, labels, classes)

    return DataSplits(part("train"), part("test"))


def load_cifar10(data_dir: str | Path | None = None) -> DataSplits:
    """Return CIFAR-10 from a class-folder tree (train/ and test/) or its verified .tar.gz."""
    dirs = search_dirs(data_dir)
    archive = find_file([CIFAR10_JPEG[0]], dirs, "cifar10")
    if archive is not None:
        if digest(archive, "sha256") != CIFAR10_JPEG[1]:
            raise CnnlabError(f"{archive} does not match its published SHA-256: delete it and copy it again")
        source = archive
    else:
        folder = next((d / "cifar10" for d in dirs if (d / "cifar10" / "train").is_dir()), None)
        if folder is None:
            looked = ", ".join(str(d) for d in dirs)
            raise CnnlabError(
                f"CIFAR-10 not found in {looked}: put {CIFAR10_JPEG[0]} or a cifar10/train|test "
                "class-folder tree in one of them, or pass --data-dir / set CNNLAB_DATA"
            )
        source = folder
    return DataSplits(*(ImageSet(*read_image_tree(source, part)) for part in ("train", "test")))


def load_folder(path: str | Path, test_fraction: float = 0.2, seed: int = 0) -> DataSplits:
    """Return an image folder (or archive) of class sub-folders, with a seeded held-out test part.

    A tree with train/ and test/ folders keeps its own split.
    """
    source = Path(path).expanduser()
    if not source.exists():
        raise CnnlabError(f"{source} does not exist: give folder:PATH of class sub-folders")
    if source.is_dir() and (source / "train").is_dir() and (source / "test").is_dir():
        return DataSplits(*(ImageSet(*read_image_tree(source, part)) for part in ("train", "test")))
    rest, held = split(ImageSet(*read_image_tree(source)), test_fraction, seed)
    return DataSplits(rest, held)


def load(spec: str, data_dir: str | Path | None = None, *, seed: int = 0) -> DataSplits:
    """Return the train and test sets a spec names: digits, mnist, cifar10 or folder:PATH."""
    if spec == "digits":
        # digits has no official split: a seeded 20 % is held out for testing.
        rest, held = split(load_digits(), 0.2, seed)
        return DataSplits(rest, held)
    if spec == "mnist":
        return load_mnist(data_dir)
    if spec == "cifar10":
        return load_cifar10(data_dir)
    if spec.startswith("folder:"):
        return load_folder(spec.removeprefix("folder:"), seed=seed)
    raise CnnlabError(
        f"unknown data spec {spec!r}: use digits, mnist, cifar10 or folder:PATH "
        "(fashion-mnist, cifar100 and the binary archives are still to come)"
    )
