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
    """One image's detections, best first: boxes (K, 4) x1y1x2y2, scores (K,), classes (K,) int64, input rows (K,)."""

    boxes: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor
    index: torch.Tensor  # the row of the input each detection came from (a candidate's box and class)


def decode(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, *, score_threshold: float = 0.05,
           iou_threshold: float = 0.5, top_k: int = 100) -> Detections:
    """Return the detections of one image: boxes scoring at least `score_threshold`, per-class NMS, the best `top_k`."""
    keep = torch.nonzero(scores >= score_threshold).squeeze(1)
    boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
    kept = batched_nms(boxes.float(), scores.float(), classes, iou_threshold)
    # batched_nms's own order breaks ties arbitrarily; index order first, then a stable sort by score.
    kept = kept.sort().values
    kept = kept[torch.sort(scores[kept], descending=True, stable=True).indices][:top_k]
    return Detections(boxes[kept], scores[kept], classes[kept], keep[kept])


def detect(boxes: torch.Tensor, scores: torch.Tensor, *, score_threshold: float = 0.05, iou_threshold: float = 0.5,
           top_k: int = 100, pre_nms: int = 1000) -> list[Detections]:
    """Return each image's detections from candidates: boxes (B, N, 4) and class scores (B, N, K).

    Every (box, class) pair is a row; the best `pre_nms` rows at or above the threshold go to NMS
    (torchvision's RetinaNet and FCOS keep 1,000 too). A detection's `index` is its row, n * K + k.
    """
    found = []
    classes = scores.shape[-1]
    for image_boxes, image_scores in zip(boxes, scores, strict=True):
        flat = image_scores.reshape(-1)
        rows = torch.nonzero(flat >= score_threshold).squeeze(1)
        if len(rows) > pre_nms:
            best = torch.sort(flat[rows], descending=True, stable=True).indices[:pre_nms]
            rows = rows[best.sort().values]
        made = decode(image_boxes[rows // classes], flat[rows], rows % classes, score_threshold=score_threshold,
                      iou_threshold=iou_threshold, top_k=top_k)
        found.append(Detections(made.boxes, made.scores, made.classes, rows[made.index]))
    return found
