"""The report's detection section: PR curves, per-class AP, the surest false positives and the missed objects, drawn.

A detection is matched at IoU 0.5 to an unmatched true box of its class, surest first (COCO's
greedy rule at one threshold). Among detections scoring at least MIN_SCORE (what `cnnlab predict`
draws), an unmatched one is a false positive, and a true box that none of them matches is missed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cnnlab.data.boxes import draw_detections
from cnnlab.report import plots
from cnnlab.train.tasks.coco_ap import Detected, Truth, box_iou
from cnnlab.train.tasks.detection import DetectionTally

MIN_SCORE = 0.3
IOU = 0.5
SHOWN = 8  # pictures of each kind


def match(truth: Truth, found: Detected, min_score: float = MIN_SCORE) -> tuple[list[int], list[int], np.ndarray]:
    """Return (false positives, missed true boxes) of one image as indices, and each detection's best IoU with a true box."""
    keep = np.flatnonzero(found.scores >= min_score)
    order = keep[np.argsort(-found.scores[keep], kind="mergesort")]
    iou = box_iou(found.boxes, truth.boxes, np.zeros(len(truth.boxes), dtype=bool)) if len(truth.boxes) else \
        np.zeros((len(found.boxes), 0))
    best = iou.max(axis=1) if iou.shape[1] else np.zeros(len(found.boxes))
    taken = np.zeros(len(truth.boxes), dtype=bool)
    false = []
    for d in order:
        candidates = np.flatnonzero((truth.classes == found.classes[d]) & ~taken & (iou[d] >= IOU))
        if len(candidates):
            taken[candidates[np.argmax(iou[d, candidates])]] = True
        else:
            false.append(int(d))
    return false, [int(g) for g in np.flatnonzero(~taken)], best


def _picture(image: torch.Tensor, boxes: list[list[float]], labels: list[str], colours: list[int]) -> str:
    """Return an image with labelled boxes drawn (colours index cnnlab.data.boxes.PALETTE) as a data URI."""
    drawn = draw_detections(image, torch.tensor(boxes).reshape(-1, 4), labels, torch.tensor(colours, dtype=torch.long))
    return plots.image_uri(drawn.float() / 255)


TRUTH, WRONG, MISSED = 2, 3, 1  # PALETTE colours: green for the truth, red for a false positive, orange for a miss


def detection_section(scores: dict[str, Any], tally: DetectionTally, images: torch.Tensor | None,
                      classes: tuple[str, ...]) -> dict[str, Any]:
    """Return the PR curves, per-class AP rows and the drawn false positives and misses of a scored detection run."""
    rows = [{"name": name, "ap": scores["per_class_ap"][name], "ap50": scores["per_class_ap50"][name],
             "boxes": int(sum((t.classes == k).sum() for t in tally.truths))} for k, name in enumerate(classes)]
    false, missed = [], []
    for index, (truth, found) in enumerate(zip(tally.truths, tally.found, strict=True)):
        wrong, lost, best = match(truth, found)
        false += [(float(found.scores[d]), index, d, float(best[d])) for d in wrong]
        missed += [(float(np.prod(truth.boxes[g, 2:] - truth.boxes[g, :2])), index, g) for g in lost]
    false.sort(key=lambda item: (-item[0], item[1]))
    missed.sort(key=lambda item: (-item[0], item[1]))
    section = {"rows": rows, "stats": scores["stats"], "min_score": MIN_SCORE, "iou": IOU,
               "false_count": len(false), "missed_count": len(missed), "false": [], "missed": []}
    for score, index, d, overlap in false[:SHOWN]:
        truth, found = tally.truths[index], tally.found[index]
        name = classes[int(found.classes[d])]
        picture = None if images is None else _picture(
            images[index], [*truth.boxes.tolist(), found.boxes[d].tolist()],
            [*(classes[int(c)] for c in truth.classes), f"{name} {score:.2f}"], [TRUTH] * len(truth.boxes) + [WRONG])
        section["false"].append({"image": index, "class": name, "score": score, "iou": overlap, "picture": picture})
    for area, index, g in missed[:SHOWN]:
        truth, found = tally.truths[index], tally.found[index]
        shown = np.flatnonzero(found.scores >= MIN_SCORE)
        picture = None if images is None else _picture(
            images[index], [*found.boxes[shown].tolist(), truth.boxes[g].tolist()],
            [*(f"{classes[int(found.classes[d])]} {found.scores[d]:.2f}" for d in shown), classes[int(truth.classes[g])]],
            [WRONG] * len(shown) + [MISSED])
        section["missed"].append({"image": index, "class": classes[int(truth.classes[g])], "area": area, "picture": picture})
    return section


def pr_curves(scores: dict[str, Any]) -> str:
    """Return each class's precision-recall curve at IoU 0.5 as a data URI (as `cnnlab eval`'s pr_curves.png)."""
    import io

    from cnnlab.train.evaluation import plot_pr_curves

    buffer = io.BytesIO()
    plot_pr_curves(scores, buffer)
    return plots.png_uri(buffer.getvalue())
