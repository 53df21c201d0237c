"""Property-based: random and mutated bytes given to the IDX and CIFAR readers raise nothing but CnnlabError."""

import gzip
import io
import pickle
import struct
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.data import cifar
from cnnlab.data.images import decode, read_idx
from cnnlab.errors import CnnlabError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID_IDX = bytes([0, 0, 8, 3]) + struct.pack(">III", 2, 3, 3) + bytes(range(18))


def _mutations() -> st.SearchStrategy[bytes]:
    """Return valid IDX bytes with random bytes flipped, cut or appended, or wholly random bytes."""
    flips = st.lists(st.tuples(st.integers(0, len(VALID_IDX) - 1), st.integers(0, 255)), max_size=6)
    mutated = st.builds(lambda edits, cut, extra: _apply(edits, cut, extra), flips, st.integers(0, len(VALID_IDX)), st.binary(max_size=8))
    return st.one_of(mutated, st.binary(max_size=64))


def _apply(edits: list[tuple[int, int]], cut: int, extra: bytes) -> bytes:
    data = bytearray(VALID_IDX)
    for index, value in edits:
        data[index] = value
    return bytes(data[:cut]) + extra


@SETTINGS
@given(payload=_mutations(), gz=st.booleans())
def test_idx_reader_raises_only_its_error(payload: bytes, gz: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("f.gz" if gz else "f")
        path.write_bytes(gzip.compress(payload) if gz and payload[:1] != b"x" else payload)
        try:
            array = read_idx(path)
        except CnnlabError:
            return
        assert array.size == int(np.prod(array.shape))


@SETTINGS
@given(payload=st.binary(max_size=4000), label_bytes=st.sampled_from([1, 2]))
def test_cifar_binary_records_raise_only_its_error(payload: bytes, label_bytes: int) -> None:
    try:
        images, labels = cifar._records(payload, label_bytes, "batch")
    except CnnlabError:
        return
    assert images.shape[1:] == (3, 32, 32) and len(images) == len(labels)


def _pickles() -> st.SearchStrategy[bytes]:
    good = pickle.dumps({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [1, 2]}, protocol=2)
    flips = st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)), max_size=4)
    return st.one_of(st.builds(lambda edits: bytes(_flip(good, edits)), flips), st.binary(max_size=200))


def _flip(data: bytes, edits: list[tuple[int, int]]) -> bytearray:
    out = bytearray(data)
    for index, value in edits:
        out[index] = value
    return out


@SETTINGS
@given(payload=_pickles())
def test_cifar_pickles_raise_only_its_error(payload: bytes) -> None:
    try:
        cifar._batch(payload, "batch")
    except CnnlabError:
        pass


@SETTINGS
@given(payload=st.binary(max_size=300))
def test_image_decoder_never_raises(payload: bytes) -> None:
    image = decode(b"\x89PNG\r\n\x1a\n" + payload)
    assert image is None or image.dtype == np.uint8
    buffer = io.BytesIO()
    assert decode(buffer.getvalue()) is None
