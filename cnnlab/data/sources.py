"""Data sources: each turns a spec into uint8 images (N, C, H, W), int64 labels and class names."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from cnnlab.data import cifar, coco, detection, segmentation
from cnnlab.data.collection import Images
from cnnlab.data.files import digest, download, find_file, search_dirs
from cnnlab.data.images import prepare_images, read_idx, read_image_tree
from cnnlab.data.loader import StreamedImages, sample_indices, scan_image_tree
from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class IdxFile:
    """One file of an IDX data set and the checksums that verify it."""

    stem: str  # file name without .gz
    gz_md5: str  # MD5 of the official .gz as published
    raw_md5: str | None = None  # MD5 of the decompressed bytes, where known: re-gzipped copies verify too


@dataclass(frozen=True)
class IdxDataset:
    """An MNIST-format data set: four IDX files, mirrors to fetch them from, class names."""

    name: str  # the data spec and the sub-folder it may live in
    files: dict[str, IdxFile]  # keys train-images, train-labels, test-images, test-labels
    mirrors: tuple[str, ...]
    classes: tuple[str, ...]
    in_root: bool  # whether the files may also sit directly in a data folder (not in its sub-folder)


MNIST = IdxDataset(
    "mnist",
    {
        "train-images": IdxFile("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
        "train-labels": IdxFile("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
        "test-images": IdxFile("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
        "test-labels": IdxFile("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
    },
    # The PyTorch mirror first, then the original site (which often refuses scripted downloads).
    ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    tuple(str(d) for d in range(10)),
    in_root=True,
)
# Xiao, Rasul & Vollgraf 2017. Same file names as MNIST, so only ever read from a fashion-mnist/
# folder; only the .gz checksums are published, so only the official .gz files verify.
FASHION_MNIST = IdxDataset(
    "fashion-mnist",
    {
        "train-images": IdxFile("train-images-idx3-ubyte", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        "train-labels": IdxFile("train-labels-idx1-ubyte", "25c81989df183df01b3e8a0aad5dffbe"),
        "test-images": IdxFile("t10k-images-idx3-ubyte", "bef4ecab320f06d8554ea6380940ec79"),
        "test-labels": IdxFile("t10k-labels-idx1-ubyte", "bb300cfdad3c16e7a12a480ee83cd310"),
    },
    ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    in_root=False,
)
# The lossy JPEG CIFAR-10 tree of ../shared/data (SHA-256 from its SHA256SUMS).
CIFAR10_JPEG = ("cifar10-jpeg.tar.gz", "d34c68f61cca57aa9144c8f25bda427abb9921bd642d5857a2fc1a6b4416f965")


@dataclass(frozen=True)
class ImageSet:
    """Images held as uint8 (N, C, H, W) with their targets and the class names the targets index."""

    images: torch.Tensor  # uint8, (N, C, H, W)
    # int64 (N,) class per image, uint8 (N, H, W) class per pixel (segmentation), or float (N, M, 5)
    # rows of (class, x1, y1, x2, y2) per image, class -1 padding (detection)
    labels: torch.Tensor
    classes: tuple[str, ...]
    skipped: int = 0  # unreadable images left out while reading
    # Float (N, K) target probabilities that batches yield instead of the labels (pseudo-labels
    # of Noisy Student); `labels` then holds their arg-max, so counts and checks see classes.
    soft: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.soft is not None and tuple(self.soft.shape) != (len(self.labels), len(self.classes)):
            raise CnnlabError(f"soft targets of shape {tuple(self.soft.shape)} for {len(self.labels)} images of "
                              f"{len(self.classes)} classes: give one probability row per image")
        classes = self.labels[..., 0][self.labels[..., 0] >= 0] if self.labels.ndim == 3 else self.labels
        if len(classes) and (classes.min() < 0 or classes.max() >= len(self.classes)):
            raise CnnlabError(
                f"labels run from {int(classes.min())} to {int(classes.max())} but there are "
                f"{len(self.classes)} classes: the label file does not belong to these images"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor, *, skipped: int = 0) -> ImageSet:
        """Return the images and labels (and soft targets) at `index`, with the same classes."""
        soft = None if self.soft is None else self.soft[index]
        return ImageSet(self.images[index], self.labels[index], self.classes, skipped, soft)

    def batches(self, batch_indices: Iterable[torch.Tensor], device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (uint8 images, targets) on `device` for each index tensor: the soft targets when held, else the labels."""
        targets = self.labels if self.soft is None else self.soft
        for index in batch_indices:
            yield self.images[index].to(device), targets[index].to(device)

    def to(self, device: torch.device) -> ImageSet:
        """Return the set with its images and targets on `device`."""
        soft = None if self.soft is None else self.soft.to(device)
        return ImageSet(self.images.to(device), self.labels.to(device), self.classes, self.skipped, soft)

    def sample_batches(self, count: int | None = None, seed: int = 0) -> Iterator[torch.Tensor]:
        """Yield the uint8 images the normalisation statistics come from, in batches (see sample_indices)."""
        for index in sample_indices(len(self), count, seed).split(4096):
            yield self.images[index]

    def resident(self) -> torch.Tensor:
        """Return the uint8 images (N, C, H, W): this set holds them in memory."""
        return self.images


@dataclass(frozen=True)
class DataSplits:
    """A training set and a separate test set with the same classes."""

    train: Images
    test: Images

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


def shuffle_labels(data: Images, seed: int) -> Images:
    """Return `data` with its labels permuted by a seeded draw (images unchanged), for random-label runs."""
    if not isinstance(data, ImageSet) or data.labels.ndim != 1:
        raise CnnlabError("data.random_labels needs class labels held in memory: drop runtime.stream, or the option")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed + 7919))
    return ImageSet(data.images, data.labels[order], data.classes, data.skipped)


def labelled_split(data: Images, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (labelled, unlabelled) indices: a seeded draw of `fraction` of each class's images (at least one each)."""
    if data.labels.ndim != 1:
        raise CnnlabError("data.labelled_fraction splits images by class: it needs one class per image, not per pixel")
    generator = torch.Generator().manual_seed(seed + 104729)  # a draw of its own, not the validation split's
    labelled = []
    for k in range(len(data.classes)):
        members = (data.labels == k).nonzero().flatten()
        if len(members):
            members = members[torch.randperm(len(members), generator=generator)]
            labelled.append(members[: max(1, round(len(members) * fraction))])
    chosen = torch.cat(labelled).sort().values
    mask = torch.ones(len(data), dtype=torch.bool)
    mask[chosen] = False
    return chosen, mask.nonzero().flatten()


# Named class groups of a data set, for `SPEC@GROUP`: CIFAR-10's animals and vehicles are the
# usual split of transfer studies (source and target tasks with no class in common).
CLASS_GROUPS = {
    "cifar10": {"animals": ("bird", "cat", "deer", "dog", "frog", "horse"),
                "vehicles": ("airplane", "automobile", "ship", "truck")},
}
PERMUTED = "permuted"
PERMUTATION_SEED = 20140101  # one fixed pixel order for every run, so runs and their test sets agree


def split_spec(spec: str) -> tuple[str, tuple[str, ...]]:
    """Return (base spec, modifiers) of `BASE@MOD@MOD`: a class list, a class range, a group, or `permuted`."""
    if spec.startswith(("folder:", "coco:")) and Path(spec.split(":", 1)[1]).expanduser().exists():
        return spec, ()  # a real path may hold an @ of its own
    base, *modifiers = spec.split("@")
    return base, tuple(modifiers)


def _chosen_classes(base: str, classes: tuple[str, ...], modifier: str) -> tuple[str, ...]:
    """Return the classes a modifier names, in its order: `a,b,c`, `first-last` (inclusive) or a group name."""
    if modifier in CLASS_GROUPS.get(base, {}):
        return CLASS_GROUPS[base][modifier]
    names: list[str] = []
    for part in modifier.split(","):
        first, dash, last = part.partition("-")
        if dash and first in classes and last in classes and part not in classes:
            start, stop = classes.index(first), classes.index(last)
            if stop < start:
                raise CnnlabError(f"{base}@{modifier}: the range {part} runs backwards: write {last}-{first}")
            names.extend(classes[start : stop + 1])
        else:
            names.append(part)
    unknown = [n for n in names if n not in classes]
    groups = ", ".join(CLASS_GROUPS.get(base, {}))
    if unknown or len(set(names)) != len(names) or not names:
        problem = f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a class" if unknown else "repeated or empty classes"
        raise CnnlabError(f"{base}@{modifier}: {problem} of {base} (classes: {', '.join(classes[:12])}"
                          f"{'...' if len(classes) > 12 else ''}{'; groups: ' + groups if groups else ''}): "
                          "name classes as a,b,c or first-last")
    if len(names) < 2:  # one class: every prediction right, a figure that says nothing
        raise CnnlabError(f"{base}@{modifier} keeps one class ({names[0]}): a classifier needs two or more; name more classes")
    return tuple(names)


def restrict_classes(data: Images, names: tuple[str, ...]) -> Images:
    """Return the images of the classes `names`, relabelled 0..len(names)-1 in that order."""
    if data.labels.ndim != 1:
        raise CnnlabError("SPEC@CLASSES keeps whole images of some classes: it needs one class per image")
    lookup = torch.full((len(data.classes),), -1, dtype=torch.int64)
    for new, name in enumerate(names):
        lookup[data.classes.index(name)] = new
    mapped = lookup[data.labels]
    index = (mapped >= 0).nonzero().flatten()
    if isinstance(data, ImageSet):
        return ImageSet(data.images[index], mapped[index], names, data.skipped)
    kept = data.subset(index)
    return replace(kept, labels=mapped[index], classes=names)


def permute_pixels(data: Images) -> ImageSet:
    """Return the images with one fixed permutation of their pixel positions (the same for every image and channel)."""
    if not isinstance(data, ImageSet):
        raise CnnlabError("SPEC@permuted reorders pixels of images held in memory: drop runtime.stream")
    n, c, h, w = data.images.shape
    order = torch.randperm(h * w, generator=torch.Generator().manual_seed(PERMUTATION_SEED))
    images = data.images.reshape(n, c, h * w)[:, :, order].reshape(n, c, h, w)
    return ImageSet(images, data.labels, data.classes, data.skipped)


def apply_modifiers(base: str, splits: DataSplits, modifiers: tuple[str, ...]) -> DataSplits:
    """Return `splits` restricted to classes and/or pixel-permuted as the spec's modifiers say, in their order."""
    for modifier in modifiers:
        if modifier == PERMUTED:
            splits = DataSplits(permute_pixels(splits.train), permute_pixels(splits.test))
        else:
            names = _chosen_classes(base, tuple(splits.train.classes), modifier)
            splits = DataSplits(restrict_classes(splits.train, names), restrict_classes(splits.test, names))
    return splits


def _idx_file(dataset: IdxDataset, file: IdxFile, data_dir: str | Path | None, allow_download: bool) -> Path:
    """Return a verified IDX file (gzipped or not), downloading it into the cache if missing."""
    dirs = search_dirs(data_dir)
    candidates = [c for d in dirs for c in ((d, d / dataset.name) if dataset.in_root else (d / dataset.name,))]
    path = find_file([file.stem + ".gz", file.stem], candidates)
    if path is None:
        path = dirs[-1] / dataset.name / (file.stem + ".gz")
        _fetch(
            [mirror + file.stem + ".gz" for mirror in dataset.mirrors], path, allow_download, candidates,
            f"{dataset.name} file {file.stem}(.gz)", f"put the four IDX files in {dirs[0] / dataset.name}",
        )
    if path.suffix == ".gz" and digest(path, "md5") == file.gz_md5:
        return path  # the official .gz itself
    if file.raw_md5 is None:
        raise CnnlabError(
            f"{path} is not the official {file.stem}.gz (MD5 {file.gz_md5}), the only form of {dataset.name} "
            "with a published checksum: delete it and fetch the official file"
        )
    actual = digest(path, "md5", decompress=path.suffix == ".gz")
    if actual != file.raw_md5:
        raise CnnlabError(
            f"{path} has MD5 {actual} (of its decompressed bytes), not the official {file.raw_md5}: "
            f"the file is damaged or not {dataset.name}; delete it and fetch it again"
        )
    return path


def load_idx(dataset: IdxDataset, data_dir: str | Path | None = None, *, allow_download: bool = True) -> DataSplits:
    """Return an MNIST-format data set's training and test images (N, 1, 28, 28) uint8, checksum-verified."""
    arrays = {key: read_idx(_idx_file(dataset, file, data_dir, allow_download)) for key, file in dataset.files.items()}

    def part(prefix: str) -> ImageSet:
        images = torch.from_numpy(arrays[f"{prefix}-images"].copy()).unsqueeze(1)  # (N, 1, 28, 28)
        labels = torch.from_numpy(arrays[f"{prefix}-labels"].astype("int64"))
        if len(images) != len(labels):
            raise CnnlabError(f"{dataset.name} {prefix}: {len(images)} images but {len(labels)} labels")
        return ImageSet(images, labels, dataset.classes)

    return DataSplits(part("train"), part("test"))


def load_mnist(data_dir: str | Path | None = None, *, allow_download: bool = True) -> DataSplits:
    """Return MNIST's 60,000 training and 10,000 test digits (28x28 grey) as uint8, checksum-verified."""
    return load_idx(MNIST, data_dir, allow_download=allow_download)


def load_cifar(name: str = "cifar10", data_dir: str | Path | None = None, *, allow_download: bool = True) -> DataSplits:
    """Return CIFAR-10 or CIFAR-100 (50,000 train, 10,000 test, 32x32 RGB) from the first form found.

    Looked for in each data folder (and its `name`/ sub-folder), in this order: a class-folder
    tree with train/ and test/ (or, for CIFAR-10, the JPEG tree's .tar.gz of ../shared/data),
    the official binary archive, the official python archive; else the binary archive is
    downloaded. Archives are used only when their published checksum matches.
    """
    dirs = search_dirs(data_dir)
    candidates = [c for d in dirs for c in (d, d / name)]
    official = cifar.ARCHIVES[name]
    if name == "cifar10":
        jpeg = find_file([CIFAR10_JPEG[0]], candidates)
        if jpeg is not None:
            _verify(jpeg, "sha256", CIFAR10_JPEG[1])
            return _tree_splits(jpeg)
    tree = next((c for c in candidates if (c / "train").is_dir() and (c / "test").is_dir() and c.name == name), None)
    if tree is not None:
        return _tree_splits(tree)
    for kind, reader in (("binary", cifar.read_binary), ("python", cifar.read_python)):
        archive = find_file([official[kind].name], candidates)
        if archive is not None:
            # For the python archive this check is what stands between a pickle and our process.
            _verify(archive, "md5", official[kind].md5)
            parts, classes = reader(archive, official[kind])
            return DataSplits(*(ImageSet(*parts[p], classes) for p in ("train", "test")))
    binary = official["binary"]
    _fetch(
        [cifar.URL + binary.name], dirs[-1] / name / binary.name, allow_download, candidates, name,
        f"put {binary.name} (or {official['python'].name}, or a {name}/train|test class-folder tree) in one of them",
    )
    return load_cifar(name, data_dir, allow_download=False)


def _fetch(urls: list[str], target: Path, allow_download: bool, looked: list[Path], what: str, fix: str) -> None:
    """Download the first answering URL to `target`, or raise one line: what is missing, where we looked, the fix."""
    try:
        if not allow_download:
            raise CnnlabError("downloads are switched off")
        download(urls, target)
    except CnnlabError as error:
        raise CnnlabError(
            f"{what} not found in {', '.join(str(d) for d in looked)} and {error}: {fix}, "
            "or pass --data-dir / set CNNLAB_DATA"
        ) from None


def _verify(path: Path, algorithm: str, expected: str) -> None:
    """Raise unless the file's digest is the published one."""
    actual = digest(path, algorithm)
    if actual != expected:
        raise CnnlabError(
            f"{path} has {algorithm.upper()} {actual}, not the published {expected}: it is damaged or "
            "not the official file; delete it and fetch it again"
        )


def _tree_splits(source: Path, size: int | None = None) -> DataSplits:
    """Return the train/ and test/ parts of a class-folder tree or its archive, read in one pass."""
    parts = read_image_tree(source, ("train", "test"), size)
    return DataSplits(*(ImageSet(*parts[p]) for p in ("train", "test")))


def load_folder(path: str | Path, test_fraction: float = 0.2, seed: int = 0, *, stream: bool = False,
                resize: int | None = None) -> DataSplits:
    """Return an image folder (or archive) of class sub-folders, with a seeded held-out test part.

    A tree with train/ and test/ folders keeps its own split. With `stream`, a folder's files
    are listed, not read: DataLoader workers decode them batch by batch while training. With
    `resize`, images are resized to resize x resize as they are read (mixed sizes are fine then).
    """
    source = Path(path).expanduser()
    if not source.exists():
        raise CnnlabError(f"{source} does not exist: give folder:PATH of class sub-folders")
    has_split = source.is_dir() and (source / "train").is_dir() and (source / "test").is_dir()
    if stream:
        if not source.is_dir():
            raise CnnlabError(f"{source} is an archive: extract it to stream its files, or set stream=false")
        prefixes = ("train", "test") if has_split else ("",)
        parts = {p: StreamedImages(*listed) for p, listed in scan_image_tree(source, prefixes).items()}
        if has_split:
            return DataSplits(parts["train"], parts["test"])
        return DataSplits(*split(parts[""], test_fraction, seed))
    if has_split:
        return _tree_splits(source, resize)
    rest, held = split(ImageSet(*read_image_tree(source, ("",), resize)[""]), test_fraction, seed)
    return DataSplits(rest, held)


# Digit-canvas segmentation (cnnlab.data.segmentation): (train canvases, test canvases, side).
# The canvases are a fixed data set: made with seeds 0 (train) and 1 (test), never the run's.
SEGMENTATION_SPECS = {"mnist-seg": (10_000, 2_000, 64), "digits-seg": (2_000, 400, 32)}


def _digit_parts(mnist: bool, data_dir: str | Path | None) -> tuple[ImageSet, ImageSet]:
    """Return the (train, test) digits generated sets are made of: MNIST's, or scikit-learn's 8x8 ones as 16x16."""
    if mnist:
        digits = load_mnist(data_dir)
        return digits.train, digits.test
    rest, held = split(load_digits(), 0.2, 0)
    return tuple(ImageSet(prepare_images(p.images, 16, 0), p.labels, p.classes) for p in (rest, held))


def load_segmentation(spec: str, data_dir: str | Path | None = None) -> DataSplits:
    """Return digit canvases with per-pixel targets: MNIST digits on 64x64, or 8x8 digits (as 16x16) on 32x32."""
    train_count, test_count, side = SEGMENTATION_SPECS[spec]
    parts = _digit_parts(spec == "mnist-seg", data_dir)
    made = [
        ImageSet(*segmentation.digit_canvases(part.images, part.labels, count, side, seed=seed), segmentation.CLASSES)
        for part, count, seed in zip(parts, (train_count, test_count), (0, 1), strict=True)
    ]
    return DataSplits(*made)


# Digit scenes for detection (cnnlab.data.detection): (train, test, side, digit sides, digits per canvas).
# Made with seeds 0 (train) and 1 (test), never the run's; digits-det is the small, fast CI variant.
DETECTION_SPECS = {"mnist-det": (10_000, 2_000, 128, (16, 48), (1, 6)), "digits-det": (2_000, 400, 96, (16, 32), (1, 4))}


def load_detection(spec: str, data_dir: str | Path | None = None) -> DataSplits:
    """Return digit scenes with box targets: MNIST digits on 128x128, or 8x8 digits (as 16x16) on 96x96."""
    train_count, test_count, side, scale, per_canvas = DETECTION_SPECS[spec]
    parts = _digit_parts(spec == "mnist-det", data_dir)
    made = [ImageSet(*detection.digit_scenes(part.images, part.labels, count, side, per_canvas, scale, seed=seed),
                     detection.CLASSES)
            for part, count, seed in zip(parts, (train_count, test_count), (0, 1), strict=True)]
    return DataSplits(*made)


def load_coco(path: str, test_fraction: float = 0.2, seed: int = 0, resize: int | None = None) -> DataSplits:
    """Return a COCO folder's images and boxes: its train/ and test/ sub-folders, or a seeded held-out part of one."""
    root = Path(path)
    parts = [root / "train", root / "test"]
    if all(p.is_dir() for p in parts):
        train = coco.read_coco(parts[0], resize)
        test = coco.read_coco(parts[1], resize or train.images.shape[-1], train.classes, train.images.shape[1])
        for name, part in zip(("train", "test"), (train, test), strict=True):
            _note(part.summary(f"coco:{root / name}"))
        return DataSplits(*(ImageSet(p.images, p.targets, p.classes, p.images_left_out) for p in (train, test)))
    read = coco.read_coco(root, resize)
    _note(read.summary(f"coco:{path}"))
    rest, held = split(ImageSet(read.images, read.targets, read.classes, read.images_left_out), test_fraction, seed)
    return DataSplits(rest, held)


def _note(line: str) -> None:
    """Print what reading data left out, once, on stderr: the run goes on without it."""
    if line:
        print(f"cnnlab: {line}", file=sys.stderr)


def load(spec: str, data_dir: str | Path | None = None, *, seed: int = 0, stream: bool = False,
         resize: int | None = None) -> DataSplits:
    """Return the train and test sets a spec names: digits, mnist, ..., folder:PATH, each optionally @CLASSES and/or @permuted."""
    base, modifiers = split_spec(spec)
    if modifiers:
        return apply_modifiers(base, load(base, data_dir, seed=seed, stream=stream, resize=resize), modifiers)
    if spec == "digits":
        # digits has no official split: a seeded 20 % is held out for testing.
        rest, held = split(load_digits(), 0.2, seed)
        return DataSplits(rest, held)
    if spec == "mnist":
        return load_mnist(data_dir)
    if spec == "fashion-mnist":
        return load_idx(FASHION_MNIST, data_dir)
    if spec in ("cifar10", "cifar100"):
        return load_cifar(spec, data_dir)
    if spec in SEGMENTATION_SPECS:
        return load_segmentation(spec, data_dir)
    if spec in DETECTION_SPECS:
        return load_detection(spec, data_dir)
    if spec.startswith("coco:"):
        return load_coco(spec.removeprefix("coco:"), seed=seed, resize=resize)
    if spec.startswith("folder:"):
        return load_folder(spec.removeprefix("folder:"), seed=seed, stream=stream, resize=resize)
    raise CnnlabError(
        f"unknown data spec {spec!r}: use digits, mnist, fashion-mnist, cifar10, cifar100, folder:PATH, coco:PATH, "
        "mnist-seg / digits-seg for segmentation, mnist-det / digits-det for detection; SPEC@CLASSES keeps some classes (mnist@0-4, cifar10@vehicles), "
        "SPEC@permuted shuffles pixel positions"
    )
