"""From a detector's scored boxes to its detections: a score threshold, per-class NMS, the top k per image.

NMS is torchvision's `batched_nms` (a box suppresses the lower-scored boxes of its own class
whose IoU with it exceeds the threshold). Order is defined for ties: by score, highest first,
then by the box's index in the input, so a run's detections repeat exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import batched_nms


@dataclass(frozen=True)
class Detections:
    """One image's detections, best first: boxes (K, 4) x1y1x2y2, scores (K,), classes (K,) int64."""

    boxes: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor


def decode(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, *, score_threshold: float = 0.05,
           iou_threshold: float = 0.5, top_k: int = 100) -> Detections:
    """Return the detections of one image: boxes scoring at least `score_threshold`, per-class NMS, the best `top_k`."""
    keep = torch.nonzero(scores >= score_threshold).squeeze(1)
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    kept = batched_nms(boxes.float(), scores.float(), classes, iou_threshold)
    # batched_nms's own order breaks ties arbitrarily; index order first, then a stable sort by score.
    kept = kept.sort().values
    kept = kept[torch.sort(scores[kept], descending=True, stable=True).indices][:top_k]
    return Detections(boxes[kept], scores[kept], classes[kept])
