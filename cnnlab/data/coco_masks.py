"""COCO's run-length masks, this project's own decoder and encoder (polygons come later).

A COCO RLE lists run lengths of a mask read column by column (Fortran order), starting with a
run of zeros (possibly empty). The compressed form writes each count, from the third on as the
difference from the count two places back, in 5-bit groups: each group is offset by 48 into a
printable character, bit 0x20 says another group follows, and bit 0x10 of the last group is the
sign (COCO's annotation format, the `cocoapi` documentation).
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


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Return the compressed COCO RLE of a mask (H, W), as pycocotools writes it ({"size", "counts": str})."""
    flat = np.asarray(mask, bool).T.reshape(-1)
    edges = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    starts = np.concatenate([[0], edges, [flat.size]])
    runs = np.diff(starts).tolist()
    if flat.size and flat[0]:
        runs = [0, *runs]  # the first run counts zeros, empty here
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": string_of([int(r) for r in runs])}
