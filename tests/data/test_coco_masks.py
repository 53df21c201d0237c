"""COCO run-length masks against pycocotools' encoder and decoder (a test reference only)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data.coco_masks import (
    counts_of,
    decode_polygon,
    decode_rle,
    decode_segmentation,
    encode_rle,
    string_of,
)
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


def _polygon(rng: np.random.Generator, height: int, width: int, case: int) -> np.ndarray:
    corners = int(rng.integers(3, 12))
    if case % 3 == 0:  # reaching outside the image on every side
        return rng.uniform(-10, 70, 2 * corners)
    points = rng.uniform(0, 1, 2 * corners) * np.tile([width, height], corners)
    return np.round(points * 2) / 2 if case % 3 == 1 else points  # on half pixels, where rounding ties


def test_polygons_rasterise_as_pycocotools_does() -> None:
    """Random polygons, convex or not, self-crossing, off the image: the same pixels as frPyObjects and decode."""
    rng = np.random.default_rng(0)
    for case in range(600):
        height, width = (int(v) for v in rng.integers(1, 60, 2))
        points = _polygon(rng, height, width, case)
        theirs = mask_api.decode(mask_api.frPyObjects([points.tolist()], height, width))[:, :, 0]
        assert np.array_equal(decode_polygon(points, height, width), theirs), case


def test_an_annotation_of_several_polygons_is_their_union_as_in_pycocotools() -> None:
    rng = np.random.default_rng(1)
    for case in range(50):
        polygons = [_polygon(rng, 40, 30, case + k).tolist() for k in range(3)]
        theirs = mask_api.decode(mask_api.merge(mask_api.frPyObjects(polygons, 40, 30)))
        assert np.array_equal(decode_segmentation(polygons, 40, 30), theirs), case
    rle = mask_api.encode(np.asfortranarray(_masks()[0]))
    assert np.array_equal(decode_segmentation({"size": rle["size"], "counts": rle["counts"].decode()}, 37, 53), _masks()[0])


def test_damaged_polygons_and_mismatched_rles_are_one_line() -> None:
    with pytest.raises(CnnlabError, match="at least 3 finite"):
        decode_polygon([1, 2, 3, 4], 5, 5)
    with pytest.raises(CnnlabError, match="at least 3 finite"):
        decode_polygon([1, 2, 3, float("nan"), 4, 4], 5, 5)
    with pytest.raises(CnnlabError, match="on an image of 5x6"):
        decode_segmentation(encode_rle(np.zeros((4, 4), np.uint8)), 5, 6)
    with pytest.raises(CnnlabError, match="list of polygons or an RLE"):
        decode_segmentation("abc", 5, 5)
