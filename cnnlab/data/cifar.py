"""The official CIFAR-10 and CIFAR-100 archives (Krizhevsky 2009): binary and python versions.

The binary version is plain fixed-length records and is what cnnlab downloads. The python
version is pickled; a pickle can run arbitrary code, so it is opened only after its MD5
matches the published one, and even then through an unpickler whose few globals are this
module's stand-ins: it builds dicts, lists, strings, numbers and plain numeric arrays, never
a numpy object of the pickle's choosing.
"""

from __future__ import annotations

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

class _NDArray:
    """Stand-in for numpy.ndarray in a pickle: only a marker that `_reconstruct` checks for."""


_PLAIN_DTYPES = {"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"}


class _DType:
    """Stand-in for numpy.dtype in a pickle: a plain numeric type code, never fields or objects."""

    def __init__(self, code: object, align: object = False, copy: object = True) -> None:
        code = code.decode("ascii", "replace") if isinstance(code, bytes) else code
        if code not in _PLAIN_DTYPES:
            raise CnnlabError(f"refusing a pickled numpy dtype {code!r}: a CIFAR batch holds only plain numbers")
        self.code, self.byteorder = str(code), "|"

    def __setstate__(self, state: object) -> None:
        # numpy's dtype state: (version, byteorder, subarray, names, fields, itemsize, alignment, flags).
        if not isinstance(state, tuple) or len(state) < 5 or any(part is not None for part in state[2:5]):
            raise CnnlabError("refusing a pickled numpy dtype with sub-arrays or fields: not a CIFAR batch")
        order = state[1].decode("ascii", "replace") if isinstance(state[1], bytes) else state[1]  # Python 2 pickles
        if order in ("<", ">"):
            self.byteorder = order

    def numpy(self) -> np.dtype:
        """Return the real numpy dtype this stands for."""
        return np.dtype((self.byteorder if self.byteorder in "<>" else "") + self.code)


class _Array:
    """Stand-in for an unpickled numpy array: checked shape, plain dtype, exactly enough raw bytes."""

    array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise CnnlabError("refusing a pickled numpy array of an unknown layout: not a CIFAR batch")
        _, shape, dtype, fortran, raw = state
        if (
            not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape)
            or not isinstance(dtype, _DType) or not isinstance(raw, bytes)  # object arrays pickle a list
        ):
            raise CnnlabError("refusing a pickled numpy array that is not plain numbers: not a CIFAR batch")
        kind = dtype.numpy()
        if len(raw) != int(np.prod(shape)) * kind.itemsize:
            raise CnnlabError("a pickled numpy array holds the wrong number of bytes for its shape: the file is damaged")
        self.array = np.frombuffer(raw, dtype=kind).reshape(shape, order="F" if fortran else "C").copy()


def _reconstruct(cls: object, shape: object, typecode: object) -> _Array:
    """Stand-in for numpy's array reconstructor: returns an empty _Array for BUILD to fill."""
    if cls is not _NDArray:
        raise CnnlabError("refusing to reconstruct anything but a numpy array: not a CIFAR batch")
    return _Array()


def _latin1(text: object, encoding: object = "latin1") -> bytes:
    """Stand-in for _codecs.encode, which Python 3 uses to store bytes in protocol-2 pickles."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise CnnlabError("refusing a pickled text conversion other than latin1: not a CIFAR batch")
    return text.encode("latin1")


# Everything a CIFAR pickle may name, mapped to stand-ins: the pickle never reaches numpy itself
# (numpy.dtype's own __setstate__ accepts flags that turn raw bytes into object pointers).
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDArray,
    ("numpy", "dtype"): _DType,
}


class _ArraysOnly(pickle.Unpickler):
    """An unpickler whose only globals are the stand-ins above."""

    def find_class(self, module: str, name: str) -> Any:
        """Return the stand-in for one of the few names a CIFAR pickle uses; refuse anything else."""
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CnnlabError(
                f"refusing to unpickle {module}.{name}: a CIFAR batch holds only numpy arrays and lists, "
                "so this file is not one (it could run code); use the binary archive instead"
            ) from None


def _arrays(value: Any) -> Any:
    """Return `value` with every stand-in array replaced by its numpy array."""
    if isinstance(value, _Array):
        if value.array is None:
            raise CnnlabError("a pickled numpy array was never filled: the file is damaged")
        return value.array
    if isinstance(value, dict):
        return {key: _arrays(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_arrays(item) for item in value]
    return value


def restricted_unpickle(payload: bytes) -> Any:
    """Return the object a pickle holds, refusing any global but numpy's plain-array constructors."""
    try:
        return _arrays(_ArraysOnly(io.BytesIO(payload), encoding="bytes").load())
    except CnnlabError:
        raise
    except Exception as error:  # noqa: BLE001 - any failure of a hostile or broken pickle is one message
        raise CnnlabError(f"unreadable CIFAR pickle ({type(error).__name__}): delete the archive and fetch it again") from None


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
