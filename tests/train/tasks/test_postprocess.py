"""Decoding against a hand-written greedy O(n^2) reference: threshold, per-class NMS, top k, ties included."""

from __future__ import annotations

import pytest
import torch

from cnnlab.train.tasks.postprocess import decode


def _iou(a: list[float], b: list[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _greedy(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, threshold: float, iou: float,
            top_k: int) -> list[int]:
    """Return the kept indices, best first: per class, visit by (score desc, index asc), drop what overlaps a kept box."""
    b, s, c = boxes.tolist(), scores.tolist(), classes.tolist()
    candidates = sorted((i for i in range(len(s)) if s[i] >= threshold), key=lambda i: (-s[i], i))
    kept: list[int] = []
    for i in candidates:
        if all(c[j] != c[i] or _iou(b[i], b[j]) <= iou for j in kept):
            kept.append(i)
    return sorted(kept, key=lambda i: (-s[i], i))[:top_k]


@pytest.mark.parametrize("seed", range(6))
def test_decode_equals_the_greedy_reference_with_ties(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    count = 400
    xy = torch.rand(count, 2, generator=generator) * 100
    boxes = torch.cat([xy, xy + 5 + torch.rand(count, 2, generator=generator) * 30], 1)
    boxes[count // 2:] = boxes[: count // 2] + torch.randn(count // 2, 4, generator=generator)  # near-duplicates
    scores = (torch.rand(count, generator=generator) * 20).round() / 20  # 21 score levels: ties everywhere
    classes = torch.randint(0, 3, (count,), generator=generator)
    got = decode(boxes, scores, classes, score_threshold=0.1, iou_threshold=0.5, top_k=100)
    expected = _greedy(boxes, scores, classes, 0.1, 0.5, 100)
    assert len(expected) == 100  # the cut at 100 falls inside a tie, so its order matters
    assert torch.equal(got.boxes, boxes[expected])
    assert torch.equal(got.scores, scores[expected]) and torch.equal(got.classes, classes[expected])


def test_nothing_above_the_threshold_is_empty() -> None:
    got = decode(torch.zeros(3, 4), torch.tensor([0.01, 0.02, 0.0]), torch.zeros(3, dtype=torch.long))
    assert got.boxes.shape == (0, 4) and got.scores.numel() == 0
