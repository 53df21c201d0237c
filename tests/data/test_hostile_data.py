"""Hostile and damaged data files: one-line errors (or a skipped image), never a traceback or garbage."""

import gzip
import io
import struct
import tarfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data.images import decode, read_idx, read_image_tree
from cnnlab.data.sources import load, load_folder
from cnnlab.errors import CnnlabError


def _idx(images: np.ndarray) -> bytes:
    return bytes([0, 0, 8, images.ndim]) + b"".join(struct.pack(">I", n) for n in images.shape) + images.tobytes()


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 257, 60000, 65535]], dtype=np.uint16)).save(path)
    assert decode(path.read_bytes(), "L").tolist() == [[0, 1, 233, 255]]  # 60000 / 257 = 233.5 -> 233
    assert decode(path.read_bytes(), "RGB")[0, 2].tolist() == [233, 233, 233]


def _bomb_png() -> bytes:
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)  # 30000 x 30000 grey, claimed
    chunk = b"IHDR" + header
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(header)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_a_decompression_bomb_is_an_unreadable_image(tmp_path) -> None:
    assert decode(_bomb_png()) is None


@pytest.mark.parametrize("damage", ["truncate", "not gzip"])
def test_damaged_mnist_files_are_one_line(tmp_path, damage: str) -> None:
    payload = gzip.compress(_idx(np.zeros((10, 28, 28), dtype=np.uint8)))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(payload[: len(payload) // 2] if damage == "truncate" else b"plain bytes, no gzip header")
    with pytest.raises(CnnlabError, match="cannot be read") as error:
        read_idx(path)
    assert "\n" not in str(error.value)
    for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(path.read_bytes())
    with pytest.raises(CnnlabError, match="cannot be read|MD5"):  # through the checksum, no traceback
        load("mnist", tmp_path)


def _tree_archive(tmp_path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for cls in ("a", "b"):
            for i in range(20):
                image = io.BytesIO()
                Image.fromarray(np.random.default_rng(i).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(image, "PNG")
                info = tarfile.TarInfo(f"{cls}/{i}.png")
                info.size = len(image.getvalue())
                tar.addfile(info, io.BytesIO(image.getvalue()))
    return buffer.getvalue()


def test_a_truncated_archive_is_one_line(tmp_path) -> None:
    payload = _tree_archive(tmp_path)
    path = tmp_path / "tree.tar.gz"
    path.write_bytes(payload[: int(len(payload) * 0.6)])
    with pytest.raises(CnnlabError, match="damaged or cut short") as error:
        load_folder(path)
    assert "\n" not in str(error.value)
    path.write_bytes(payload)
    assert len(load_folder(path).train) == 32  # the whole archive reads: 40 images, 20 % held out


def test_classes_without_a_readable_image_are_refused_like_empty_ones(tmp_path) -> None:
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            (tmp_path / cls / f"{i}.png").write_bytes(b"not a png")
    with pytest.raises(CnnlabError, match="holds no readable images"):
        read_image_tree(tmp_path)
    Image.new("RGB", (4, 4)).save(tmp_path / "cat" / "ok.png")
    with pytest.raises(CnnlabError, match=r"dog holds no readable images"):
        read_image_tree(tmp_path)


def test_mixed_sizes_train_once_input_size_is_set(tmp_path) -> None:
    for cls, sizes in (("small", (6, 9, 12)), ("large", (20, 16, 10))):
        (tmp_path / cls).mkdir()
        for i, side in enumerate(sizes * 3):
            Image.new("RGB", (side, side + 1), (40 * i, 0, 0)).save(tmp_path / cls / f"{i}.png")
    with pytest.raises(CnnlabError, match="different sizes.*input_size=N"):
        load_folder(tmp_path)
    splits = load_folder(tmp_path, resize=8)
    assert splits.train.images.shape[1:] == (3, 8, 8) and splits.train.images.dtype == torch.uint8


def test_a_streamed_folder_of_unreadable_files_is_one_line(tmp_path) -> None:
    from rich.console import Console

    from cnnlab.train.run import train_run

    for cls in ("a", "b"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(4):
            (tmp_path / "data" / cls / f"{i}.png").write_bytes(b"not a png")
    with pytest.raises(CnnlabError, match="no training images|no readable") as error:
        train_run(data=f"folder:{tmp_path / 'data'}", out=str(tmp_path / "run"), console=Console(file=io.StringIO()),
                  overrides=("stream=true", "workers=0", "input_size=8", "epochs=1"))
    assert "\n" not in str(error.value)
