"""MNIST IDX with checksums and downloads, class-folder trees and archives, data locations."""

import dataclasses
import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import sources
from cnnlab.data.files import search_dirs
from cnnlab.data.images import read_idx
from cnnlab.errors import CnnlabError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """Four small IDX files (two gzipped, two plain) with their MD5s registered."""
    import gzip

    rng = np.random.default_rng(0)
    arrays = {
        "train-images": rng.integers(0, 256, (12, 28, 28)),
        "train-labels": rng.integers(0, 10, (12,)),
        "test-images": rng.integers(0, 256, (5, 28, 28)),
        "test-labels": rng.integers(0, 10, (5,)),
    }
    files = {}
    folder = tmp_path / "mnist"
    folder.mkdir()
    for index, (key, array) in enumerate(arrays.items()):
        stem = sources.MNIST.files[key].stem
        payload = _idx_bytes(array)
        if index % 2:
            (folder / stem).write_bytes(payload)
        else:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(payload))
        # No .gz here is the "official" one: every file verifies by its decompressed MD5.
        files[key] = sources.IdxFile(stem, "0" * 32, hashlib.md5(payload).hexdigest())
    monkeypatch.setattr(sources, "MNIST", dataclasses.replace(sources.MNIST, files=files))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setattr("cnnlab.data.files.CACHE_DIR", tmp_path / "cache")
    return tmp_path, arrays


def test_idx_round_trip_and_checksums(tiny_mnist) -> None:
    root, arrays = tiny_mnist
    data = sources.load("mnist", root)
    assert data.train.images.shape == (12, 1, 28, 28) and data.test.images.shape == (5, 1, 28, 28)
    assert torch.equal(data.train.labels, torch.from_numpy(arrays["train-labels"]))
    assert torch.equal(data.test.images[:, 0], torch.from_numpy(arrays["test-images"].astype(np.uint8)))


def test_damaged_file_is_refused(tiny_mnist) -> None:
    root, _ = tiny_mnist
    plain = root / "mnist" / sources.MNIST.files["train-labels"].stem
    plain.write_bytes(plain.read_bytes()[:-1] + b"\x07")
    with pytest.raises(CnnlabError, match="not the official"):
        sources.load("mnist", root)


def test_fashion_mnist_verifies_by_the_official_gz_only(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setattr("cnnlab.data.files.CACHE_DIR", tmp_path / "cache")
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(1)
    files = {}
    for key, shape in {"train-images": (6, 28, 28), "train-labels": (6,), "test-images": (3, 28, 28),
                       "test-labels": (3,)}.items():
        stem = sources.FASHION_MNIST.files[key].stem
        packed = gzip.compress(_idx_bytes(rng.integers(0, 10 if len(shape) == 1 else 256, shape)), mtime=0)
        (folder / (stem + ".gz")).write_bytes(packed)
        files[key] = sources.IdxFile(stem, hashlib.md5(packed).hexdigest())  # no decompressed MD5 published
    fashion = dataclasses.replace(sources.FASHION_MNIST, files=files, mirrors=("http://127.0.0.1:9/none/",))
    monkeypatch.setattr(sources, "FASHION_MNIST", fashion)
    data = sources.load("fashion-mnist", tmp_path)
    assert len(data.train) == 6 and data.train.classes[9] == "Ankle boot"
    # The same bytes re-gzipped differently cannot be verified, so they are refused, naming why.
    stem = files["test-labels"].stem
    (folder / (stem + ".gz")).write_bytes(gzip.compress(gzip.decompress((folder / (stem + ".gz")).read_bytes()), mtime=7))
    with pytest.raises(CnnlabError, match="only form of fashion-mnist with a published checksum"):
        sources.load("fashion-mnist", tmp_path)
    # MNIST's file names are the same, so Fashion-MNIST is never read from a data folder's root.
    for file in folder.iterdir():
        file.rename(tmp_path / file.name)
    with pytest.raises(CnnlabError, match="not found in"):
        sources.load("fashion-mnist", tmp_path)


def test_truncated_idx_is_refused(tmp_path) -> None:
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(_idx_bytes(np.zeros(10))[:-3])
    with pytest.raises(CnnlabError, match="truncated"):
        read_idx(path)


def test_missing_files_are_downloaded_from_a_mirror(tiny_mnist, monkeypatch, tmp_path) -> None:
    root, arrays = tiny_mnist
    mirror = tmp_path / "mirror"
    (root / "mnist").rename(mirror)
    # A file:// mirror exercises the real download path without a network.
    mirrors = ("http://127.0.0.1:9/none/", mirror.as_uri() + "/")
    monkeypatch.setattr(sources, "MNIST", dataclasses.replace(sources.MNIST, mirrors=mirrors))
    import gzip

    for stem in (f.stem for f in sources.MNIST.files.values()):
        if (mirror / stem).exists():
            (mirror / (stem + ".gz")).write_bytes(gzip.compress((mirror / stem).read_bytes()))
    data = sources.load("mnist")
    assert len(data.train) == 12
    assert (tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_no_network_error_says_where_it_looked(tiny_mnist, monkeypatch, tmp_path) -> None:
    root, _ = tiny_mnist
    monkeypatch.setattr(sources, "MNIST", dataclasses.replace(sources.MNIST, mirrors=("http://127.0.0.1:9/none/",)))
    with pytest.raises(CnnlabError) as error:
        sources.load("mnist", tmp_path / "empty")
    message = str(error.value)
    assert "not found in" in message and str(tmp_path / "empty") in message and "--data-dir" in message
    assert "\n" not in message


def test_search_order(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "env"))
    dirs = search_dirs(tmp_path / "arg")
    assert dirs[:2] == [tmp_path / "arg", tmp_path / "env"] and dirs[2].name == "cnnlab"


def _png(colour: int, size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (colour, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _tree(root: Path, counts: dict[str, int], size: int = 8) -> None:
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            (root / name / f"{i}.png").write_bytes(_png(10 * i, size))


def test_folder_tree_skips_corrupt_images(tmp_path) -> None:
    _tree(tmp_path / "data", {"cat": 5, "dog": 5})
    (tmp_path / "data" / "dog" / "broken.png").write_bytes(b"not a png")
    splits = sources.load(f"folder:{tmp_path / 'data'}")
    assert splits.train.classes == ("cat", "dog")
    assert len(splits.train) + len(splits.test) == 10
    assert splits.skipped == 1
    assert splits.train.images.dtype == torch.uint8 and splits.train.images.shape[1:] == (3, 8, 8)


def test_archive_of_train_and_test_trees(tmp_path) -> None:
    _tree(tmp_path / "tree" / "train", {"a": 3, "b": 2})
    _tree(tmp_path / "tree" / "test", {"a": 1, "b": 1})
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "tree" / "train", arcname="train")
        tar.add(tmp_path / "tree" / "test", arcname="test")
    from cnnlab.data.images import read_image_tree

    parts = read_image_tree(archive, ("train", "test"))  # one pass over the archive for both
    images, labels, classes, skipped = parts["train"]
    assert images.shape == (5, 3, 8, 8) and labels.tolist() == [0, 0, 0, 1, 1] and classes == ("a", "b")
    assert parts["test"][0].shape[0] == 2 and skipped == 0


def test_parts_share_one_class_list(tmp_path) -> None:
    from cnnlab.data.images import read_image_tree

    _tree(tmp_path / "train", {"a": 2, "b": 2, "c": 1})
    _tree(tmp_path / "test", {"a": 1, "c": 1})  # no "b" in the test part
    parts = read_image_tree(tmp_path, ("train", "test"))
    assert parts["test"][2] == ("a", "b", "c") and parts["test"][1].tolist() == [0, 2]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: (_tree(root, {"a": 2}), (root / "b").mkdir()), "holds no images"),
        (lambda root: (_tree(root, {"a": 2}), _tree(root / "x", {"b": 2}, size=9)), "different sizes"),
    ],
)
def test_folder_errors(tmp_path, setup, message: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    setup(root)
    if message == "different sizes":
        (root / "x" / "b").rename(root / "b")
        (root / "x").rmdir()
    with pytest.raises(CnnlabError, match=message):
        sources.load(f"folder:{root}")


def test_labels_out_of_range_are_refused() -> None:
    with pytest.raises(CnnlabError, match="labels run from 0 to 10 but there are 10 classes"):
        sources.ImageSet(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 10]), tuple("0123456789"))


@pytest.mark.skipif(not (SHARED / "train-images-idx3-ubyte.gz").exists(), reason="../shared/data not present")
def test_real_mnist_from_shared() -> None:
    data = sources.load("mnist", SHARED)
    assert (len(data.train), len(data.test)) == (60_000, 10_000)
    assert data.train.labels[:5].tolist() == [5, 0, 4, 1, 9]  # the first digits of MNIST
    assert data.train.labels.bincount().tolist()[1] == 6_742  # ones are the commonest class


@pytest.mark.skipif(not (SHARED / "cifar10-jpeg.tar.gz").exists(), reason="../shared/data not present")
def test_real_cifar10_from_shared() -> None:
    data = sources.load("cifar10", SHARED)
    assert (len(data.train), len(data.test)) == (50_000, 10_000)
    assert data.train.classes[0] == "airplane" and data.train.classes[-1] == "truck"
    assert data.test.labels.bincount().tolist() == [1_000] * 10
