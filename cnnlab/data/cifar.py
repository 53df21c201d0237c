"""The official CIFAR-10 and CIFAR-100 archives (Krizhevsky 2009): binary and python versions.

The binary version is plain fixed-length records and is what cnnlab downloads. The python
version is pickled; a pickle can run arbitrary code, so it is opened only after its MD5
matches the published one, and even then through an unpickler that can build nothing but
numpy arrays, lists, dicts, strings and numbers.
"""

from __future__ import annotations

import importlib
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.errors import CnnlabError

IMAGE_BYTES = 3 * 32 * 32  # one image: 1,024 red, then green, then blue values, row-major


@dataclass(frozen=True)
class CifarArchive:
    """Where one official archive lives and what it holds."""

    name: str  # file name on the official site
    md5: str  # published at https://www.cs.toronto.edu/~kriz/cifar.html
    train: tuple[str, ...]  # member names of the training batches
    test: str  # member name of the test batch
    meta: str  # member listing the class names (text for binary, pickle for python)
    label_bytes: int = 1  # binary records: CIFAR-100 stores (coarse, fine)


URL = "https://www.cs.toronto.edu/~kriz/"
ARCHIVES: dict[str, dict[str, CifarArchive]] = {
    "cifar10": {
        "binary": CifarArchive(
            "cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
            tuple(f"cifar-10-batches-bin/data_batch_{i}.bin" for i in range(1, 6)),
            "cifar-10-batches-bin/test_batch.bin", "cifar-10-batches-bin/batches.meta.txt",
        ),
        "python": CifarArchive(
            "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
            tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)),
            "cifar-10-batches-py/test_batch", "cifar-10-batches-py/batches.meta",
        ),
    },
    "cifar100": {
        "binary": CifarArchive(
            "cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
            ("cifar-100-binary/train.bin",), "cifar-100-binary/test.bin",
            "cifar-100-binary/fine_label_names.txt", label_bytes=2,
        ),
        "python": CifarArchive(
            "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
            ("cifar-100-python/train",), "cifar-100-python/test", "cifar-100-python/meta",
        ),
    },
}

# What a CIFAR pickle may construct: numpy's array reconstruction and nothing else. (_codecs.encode
# turns text into bytes; Python 3 writes array buffers that way in protocol-2 pickles.)
_ALLOWED_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that refuses every global except numpy's array constructors (and text-to-bytes)."""

    def find_class(self, module: str, name: str) -> Any:
        """Return numpy's array constructors; refuse anything else a pickle names."""
        if (module, name) not in _ALLOWED_GLOBALS:
            raise CnnlabError(
                f"refusing to unpickle {module}.{name}: a CIFAR batch holds only numpy arrays and lists, "
                "so this file is not one (it could run code); use the binary archive instead"
            )
        if module.startswith("numpy.core"):  # numpy 2 moved numpy.core to numpy._core
            module = "numpy._core" + module.removeprefix("numpy.core")
            try:
                return getattr(importlib.import_module(module), name)
            except ImportError:
                module = "numpy.core" + module.removeprefix("numpy._core")
        return getattr(importlib.import_module(module), name)


def restricted_unpickle(payload: bytes) -> Any:
    """Return the object a pickle holds, refusing any global but numpy's array constructors."""
    try:
        return _ArraysOnly(io.BytesIO(payload), encoding="bytes").load()
    except CnnlabError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise CnnlabError(f"unreadable CIFAR pickle ({error}): delete the archive and fetch it again") from None


def _members(archive: Path, names: set[str]) -> dict[str, bytes]:
    """Return the bytes of the named members of a tar archive, or raise naming the first missing."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                if member.name in names and member.isfile():
                    handle = tar.extractfile(member)
                    if handle is not None:
                        found[member.name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise CnnlabError(f"{archive} is not a readable tar archive ({error}): delete it and fetch it again") from None
    missing = sorted(names - set(found))
    if missing:
        raise CnnlabError(f"{archive} lacks {missing[0]}: it is not the official archive; delete it and fetch it again")
    return found


def _records(payload: bytes, label_bytes: int, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (uint8 images (N, 3, 32, 32), int64 labels) of binary records; the last label byte is the class."""
    record = label_bytes + IMAGE_BYTES
    if len(payload) % record:
        raise CnnlabError(f"{where} holds {len(payload)} bytes, not a whole number of {record}-byte records: it is damaged")
    rows = np.frombuffer(payload, dtype=np.uint8).reshape(-1, record)
    images = torch.from_numpy(rows[:, label_bytes:].copy()).view(-1, 3, 32, 32)
    return images, torch.from_numpy(rows[:, label_bytes - 1].astype(np.int64))


def read_binary(archive: Path, spec: CifarArchive) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], tuple[str, ...]]:
    """Return ({'train': (images, labels), 'test': ...}, class names) of an official binary archive."""
    data = _members(archive, {*spec.train, spec.test, spec.meta})
    classes = tuple(line.strip() for line in data[spec.meta].decode().splitlines() if line.strip())
    parts = {"test": _records(data[spec.test], spec.label_bytes, spec.test)}
    batches = [_records(data[name], spec.label_bytes, name) for name in spec.train]
    parts["train"] = (torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]))
    return parts, classes


def _batch(payload: bytes, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images, labels) of one unpickled python-version batch."""
    batch = restricted_unpickle(payload)
    labels = batch.get(b"labels", batch.get(b"fine_labels")) if isinstance(batch, dict) else None
    pixels = batch.get(b"data") if isinstance(batch, dict) else None
    if not isinstance(pixels, np.ndarray) or labels is None or pixels.shape[1:] != (IMAGE_BYTES,):
        raise CnnlabError(f"{where} is not a CIFAR batch (no data array of 3,072 columns with labels)")
    images = torch.from_numpy(pixels.astype(np.uint8)).view(-1, 3, 32, 32)
    return images, torch.as_tensor(np.asarray(labels), dtype=torch.int64)


def read_python(archive: Path, spec: CifarArchive) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], tuple[str, ...]]:
    """Return ({'train': (images, labels), 'test': ...}, class names) of a python-version archive."""
    data = _members(archive, {*spec.train, spec.test, spec.meta})
    meta = restricted_unpickle(data[spec.meta])
    names = meta.get(b"label_names", meta.get(b"fine_label_names")) if isinstance(meta, dict) else None
    if not names:
        raise CnnlabError(f"{spec.meta} in {archive} lists no class names: it is not the official archive")
    classes = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    parts = {"test": _batch(data[spec.test], spec.test)}
    batches = [_batch(data[name], name) for name in spec.train]
    parts["train"] = (torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches]))
    return parts, classes
