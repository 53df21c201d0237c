"""MNIST IDX with checksums and downloads, class-folder trees and archives, data locations."""

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
        stem = sources.MNIST_FILES[key][0]
        payload = _idx_bytes(array)
        if index % 2:
            (folder / stem).write_bytes(payload)
        else:
            (folder / (stem + ".gz")).write_bytes(gzip.compress(payload))
        files[key] = (stem, hashlib.md5(payload).hexdigest())
    monkeypatch.setattr(sources, "MNIST_FILES", files)
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
    plain = root / "mnist" / sources.MNIST_FILES["train-labels"][0]
    plain.write_bytes(plain.read_bytes()[:-1] + b"\x07")
    with pytest.raises(CnnlabError, match="not the official"):
        sources.load("mnist", root)


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
    monkeypatch.setattr(sources, "MNIST_MIRRORS", ("http://127.0.0.1:9/none/", mirror.as_uri() + "/"))
    import gzip

    for stem, _ in sources.MNIST_FILES.values():
        if (mirror / stem).exists():
            (mirror / (stem + ".gz")).write_bytes(gzip.compress((mirror / stem).read_bytes()))
    data = sources.load("mnist")
    assert len(data.train) == 12
    assert (tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_no_network_error_says_where_it_looked(tiny_mnist, monkeypatch, tmp_path) -> None:
    root, _ = tiny_mnist
    monkeypatch.setattr(sources, "MNIST_MIRRORS", ("http://127.0.0.1:9/none/",))
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

    images, labels, classes, skipped = read_image_tree(archive, "train")
    assert images.shape == (5, 3, 8, 8) and labels.tolist() == [0, 0, 0, 1, 1] and classes == ("a", "b")
    assert read_image_tree(archive, "test")[0].shape[0] == 2 and skipped == 0


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
