"""COCO run-length masks against pycocotools' encoder and decoder (a test reference only)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data.coco_masks import counts_of, decode_rle, encode_rle, string_of
from cnnlab.errors import CnnlabError

mask_api = pytest.importorskip("pycocotools.mask")
# pycocotools' own numpy-2 notice, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _masks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    blobs = (rng.random((37, 53)) < 0.02).astype(np.uint8)
    for _ in range(3):  # grow the seeds into blobs: long runs, whose deltas go negative
        blobs = np.maximum(blobs, np.roll(blobs, 1, 0) | np.roll(blobs, 1, 1))
    return [blobs, np.zeros((5, 7), np.uint8), np.ones((4, 9), np.uint8), (rng.random((64, 64)) < 0.5).astype(np.uint8),
            np.pad(np.ones((300, 200), np.uint8), ((10, 400), (900, 30)))]


@pytest.mark.parametrize("index", range(5))
def test_encode_and_decode_equal_pycocotools(index: int) -> None:
    mask = _masks()[index]
    theirs = mask_api.encode(np.asfortranarray(mask))
    ours = encode_rle(mask)
    assert ours["size"] == list(theirs["size"]) and ours["counts"] == theirs["counts"].decode()
    assert np.array_equal(decode_rle(ours), mask)
    assert np.array_equal(decode_rle(theirs), mask_api.decode(theirs))


def test_uncompressed_counts_and_round_trips() -> None:
    mask = _masks()[0]
    runs = counts_of(encode_rle(mask)["counts"])
    assert np.array_equal(decode_rle({"size": list(mask.shape), "counts": runs}), mask)
    assert counts_of(string_of([5, 0, 3, 1000, 2, 70000])) == [5, 0, 3, 1000, 2, 70000]


def test_damaged_rles_are_one_line() -> None:
    with pytest.raises(CnnlabError, match="add up to"):
        decode_rle({"size": [2, 2], "counts": [1, 2]})
    with pytest.raises(CnnlabError, match="needs 'size'"):
        decode_rle({"counts": "abc"})
    with pytest.raises(CnnlabError, match="ends inside a count"):
        counts_of("o")  # 'o' - 48 = 63: a group that says another follows
