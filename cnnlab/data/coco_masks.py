"""COCO's masks, this project's own decoder and encoder: run-length strings and polygons.

A COCO RLE lists run lengths of a mask read column by column (Fortran order), starting with a
run of zeros (possibly empty). The compressed form writes each count, from the third on as the
difference from the count two places back, in 5-bit groups: each group is offset by 48 into a
printable character, bit 0x20 says another group follows, and bit 0x10 of the last group is the
sign (COCO's annotation format, the `cocoapi` documentation).

A polygon is rasterised as COCO's tools do, so that a mask and its area agree with theirs pixel
for pixel: the vertices are scaled by 5 and rounded, each edge is walked one step of its longer
axis at a time, and wherever the walk crosses a column boundary of the real image, the column's
pixels from that row down toggle between outside and inside (the `cocoapi` maskApi behaviour,
written here from its description with numpy).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError


def counts_of(text: str | bytes) -> list[int]:
    """Return the run lengths a compressed COCO RLE string encodes."""
    data = text.encode() if isinstance(text, str) else text
    counts: list[int] = []
    position = 0
    while position < len(data):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(data):
                raise CnnlabError("a COCO RLE string ends inside a count: the annotation is damaged")
            group = data[position] - 48
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            position += 1
            shift += 5
            if not more and group & 0x10:
                value -= 1 << shift  # the last group's top bit is the sign
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def string_of(counts: list[int]) -> str:
    """Return the compressed COCO RLE string of run lengths `counts`."""
    out = []
    for index, count in enumerate(counts):
        value = count - counts[index - 2] if index > 2 else count
        more = True
        while more:
            group = value & 0x1F
            value >>= 5
            more = value != -1 if group & 0x10 else value != 0
            out.append(chr(group + 48 + (0x20 if more else 0)))
    return "".join(out)


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Return the uint8 mask (H, W) of a COCO RLE ({"size": [H, W], "counts": string or list of ints})."""
    try:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError):
        raise CnnlabError(f"a COCO RLE needs 'size' [H, W] and 'counts', got {sorted(rle) if isinstance(rle, dict) else rle!r}") from None
    runs = counts_of(counts) if isinstance(counts, str | bytes) else [int(c) for c in counts]
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise CnnlabError(f"a COCO RLE's runs add up to {sum(runs)} pixels, not {height}x{width}: the annotation is damaged")
    values = np.zeros(len(runs), np.uint8)
    values[1::2] = 1  # runs alternate, zeros first
    return np.repeat(values, runs).reshape(width, height).T


_SCALE = 5.0


def _edge_points(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the integer points (u, v) walked along the closed polygon of scaled vertices (x, y), edge by edge."""
    us, vs = [], []
    for xs, ys, xe, ye in zip(x[:-1], y[:-1], x[1:], y[1:], strict=True):
        dx, dy = abs(xe - xs), abs(ye - ys)
        along_x = dx >= dy
        # The walk always starts its rounding from the lower end of the longer axis, whichever way it runs.
        flip = (along_x and xs > xe) or (not along_x and ys > ye)
        if flip:
            xs, xe, ys, ye = xe, xs, ye, ys
        steps = dx if along_x else dy
        t = np.arange(steps + 1)
        t = steps - t if flip else t
        if along_x:
            slope = (ye - ys) / dx if dx else 0.0
            us.append(t + xs)
            vs.append(np.trunc(ys + slope * t + 0.5).astype(np.int64))
        else:
            slope = (xe - xs) / dy
            vs.append(t + ys)
            us.append(np.trunc(xs + slope * t + 0.5).astype(np.int64))
    return np.concatenate(us), np.concatenate(vs)


def decode_polygon(xy: list[float] | np.ndarray, height: int, width: int) -> np.ndarray:
    """Return the uint8 mask (H, W) of a COCO polygon [x1, y1, x2, y2, ...] in pixel coordinates."""
    points = np.asarray(xy, dtype=np.float64).reshape(-1)
    if points.size < 6 or points.size % 2 or not np.isfinite(points).all():
        raise CnnlabError(f"a COCO polygon needs at least 3 finite (x, y) points, got {points.size} numbers: "
                          "the annotation is damaged")
    scaled = np.trunc(_SCALE * points + 0.5).astype(np.int64)  # C's (int) cast: toward zero
    x, y = np.append(scaled[0::2], scaled[0]), np.append(scaled[1::2], scaled[1])
    u, v = _edge_points(x, y)
    moved = u[1:] != u[:-1]
    u0, u1, v0, v1 = u[:-1][moved], u[1:][moved], v[:-1][moved], v[1:][moved]
    column = (np.where(u1 < u0, u1, u1 - 1) + 0.5) / _SCALE - 0.5
    row = (np.minimum(v0, v1) + 0.5) / _SCALE - 0.5
    keep = (np.floor(column) == column) & (column >= 0) & (column <= width - 1)
    row = np.ceil(np.clip(row[keep], 0, height)).astype(np.int64)
    toggles = column[keep].astype(np.int64) * height + row
    # A position toggled an even number of times stays as it was.
    flips = np.bincount(toggles, minlength=height * width + 1)[: height * width] % 2
    return (np.cumsum(flips) % 2).astype(np.uint8).reshape(width, height).T


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Return the uint8 mask (H, W) of a COCO annotation's `segmentation`: polygons (their union) or an RLE."""
    if isinstance(segmentation, dict):
        mask = decode_rle(segmentation)
        if mask.shape != (height, width):
            raise CnnlabError(f"a COCO RLE of size {list(mask.shape)} on an image of {height}x{width}: the annotation is damaged")
        return mask
    if not isinstance(segmentation, list) or not segmentation:
        raise CnnlabError(f"a COCO segmentation is a list of polygons or an RLE dict, got {type(segmentation).__name__}")
    polygons = segmentation if isinstance(segmentation[0], list | tuple) else [segmentation]
    mask = np.zeros((height, width), np.uint8)
    for polygon in polygons:
        mask |= decode_polygon(polygon, height, width)
    return mask


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Return the compressed COCO RLE of a mask (H, W), as pycocotools writes it ({"size", "counts": str})."""
    flat = np.asarray(mask, bool).T.reshape(-1)
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    starts = np.concatenate([[0], edges, [flat.size]])
    runs = np.diff(starts).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]  # the first run counts zeros, empty here
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": string_of([int(r) for r in runs])}
