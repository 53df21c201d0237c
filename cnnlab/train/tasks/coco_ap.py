"""COCO's box average precision, this project's own code: the 12 figures of the COCO detection challenge.

The protocol is COCO's (Lin et al. 2014; the `cocoapi` evaluation code's documented behaviour):
- per image and class, detections are taken by descending score (ties keep their given order),
  at most the largest `max_dets` of them; each is matched greedily to the unmatched ground-truth
  box of highest IoU at or above the threshold, a non-ignored box always before an ignored one;
- a ground-truth box is ignored when it is a crowd or its `area` falls outside the area band;
  a crowd box may match any number of detections, and its IoU is the intersection over the
  detection's own area; a detection matched to an ignored box, or unmatched and outside the area
  band, is ignored too;
- precision is made monotone from the right and read at 101 recall points (the first point at
  or beyond each), recall is the last one reached; a class with no non-ignored box has neither
  (-1), and a figure is the mean over the entries that exist (-1 when none does).
Boxes are (x1, y1, x2, y2) in pixels; areas of detections are their box areas. With
`iou_type="segm"` (COCO's mask AP) the overlaps are those of the instance masks and a detection's
area is its mask's pixel count; everything else is the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
AREAS = {"all": (0.0, 1e10), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, 1e10)}
MAX_DETS = (1, 10, 100)
#: The 12 figures, in COCO's order: (name, AP or AR, IoU threshold or None for 0.5:0.95, area band, max detections).
STATS = (("AP", "ap", None, "all", 100), ("AP50", "ap", 0.5, "all", 100), ("AP75", "ap", 0.75, "all", 100),
         ("AP_small", "ap", None, "small", 100), ("AP_medium", "ap", None, "medium", 100),
         ("AP_large", "ap", None, "large", 100), ("AR1", "ar", None, "all", 1), ("AR10", "ar", None, "all", 10),
         ("AR100", "ar", None, "all", 100), ("AR_small", "ar", None, "small", 100),
         ("AR_medium", "ar", None, "medium", 100), ("AR_large", "ar", None, "large", 100))


@dataclass(frozen=True)
class Truth:
    """One image's ground truth: boxes (M, 4) x1y1x2y2, classes (M,), crowd flags (M,), areas (M,), masks (M, H, W) if any."""

    boxes: np.ndarray
    classes: np.ndarray
    crowd: np.ndarray
    areas: np.ndarray
    masks: np.ndarray | None = None


@dataclass(frozen=True)
class Detected:
    """One image's detections: boxes (K, 4) x1y1x2y2, scores (K,), classes (K,) and masks (K, H, W) if any."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    masks: np.ndarray | None = None


@dataclass(frozen=True)
class Evaluation:
    """The figures: `stats` (12, COCO's order), precision (T, R, K, A, M) and recall (T, K, A, M), -1 where undefined."""

    stats: dict[str, float]
    precision: np.ndarray
    recall: np.ndarray
    classes: tuple[int, ...]

    def per_class_ap(self) -> dict[int, float]:
        """Return AP at IoU 0.5:0.95 per class (all areas, 100 detections), -1 for a class without boxes."""
        out = {}
        for index, label in enumerate(self.classes):
            values = self.precision[:, :, index, 0, -1]
            out[label] = float(values[values > -1].mean()) if (values > -1).any() else -1.0
        return out


def box_iou(detections: np.ndarray, truths: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Return the IoU (K, M) of x1y1x2y2 boxes; against a crowd box, the intersection over the detection's area."""
    if not len(detections) or not len(truths):
        return np.zeros((len(detections), len(truths)))
    d, g = detections[:, None, :], truths[None, :, :]
    width = np.minimum(d[..., 2], g[..., 2]) - np.maximum(d[..., 0], g[..., 0])
    height = np.minimum(d[..., 3], g[..., 3]) - np.maximum(d[..., 1], g[..., 1])
    inter = np.where((width > 0) & (height > 0), width * height, 0.0)
    area_d = (detections[:, 2] - detections[:, 0]) * (detections[:, 3] - detections[:, 1])
    area_g = (truths[:, 2] - truths[:, 0]) * (truths[:, 3] - truths[:, 1])
    union = np.where(crowd[None, :], area_d[:, None], area_d[:, None] + area_g[None, :] - inter)
    # Two empty boxes meet nowhere: 0, not 0/0.
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def mask_iou(detections: np.ndarray, truths: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """Return the IoU (K, M) of masks (K, H, W) and (M, H, W); against a crowd mask, the intersection over the detection's area."""
    pixels = int(np.prod(truths.shape[1:]))
    # float32 counts pixels exactly up to 2**24, a 4096x4096 image.
    d = detections.reshape(len(detections), pixels).astype(np.float32)
    g = truths.reshape(len(truths), pixels).astype(np.float32)
    inter = (d @ g.T).astype(np.float64)
    area_d, area_g = d.sum(1, dtype=np.float64), g.sum(1, dtype=np.float64)
    union = np.where(crowd[None, :], area_d[:, None], area_d[:, None] + area_g[None, :] - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _overlaps(truth: Truth, g: np.ndarray, crowd: np.ndarray, found: Detected, d: np.ndarray, order: np.ndarray,
              iou_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the IoU (K, M) of one image's detections `d` (in `order`) with its truths `g` (their crowd flags), and the detections' areas."""
    if iou_type == "bbox":
        boxes = found.boxes[d][order]
        return box_iou(boxes, truth.boxes[g], crowd), (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    if not d.any():  # no detections of this class here: nothing to overlap, masks or not
        return np.zeros((0, int(g.sum()))), np.zeros(0)
    if found.masks is None or (g.any() and truth.masks is None):
        raise ValueError("mask AP needs masks on both the truths and the detections")
    masks = found.masks[d][order]
    areas = masks.sum((1, 2)).astype(np.float64)
    return (mask_iou(masks, truth.masks[g], crowd) if g.any() else np.zeros((len(masks), 0))), areas


@dataclass
class _Matched:
    """One image and class in one area band: each kept detection's score, match per threshold and ignore flag."""

    scores: np.ndarray  # (D,)
    matched: np.ndarray  # (T, D) bool
    ignored: np.ndarray  # (T, D) bool
    truths: int  # non-ignored ground-truth boxes


def _match(iou: np.ndarray, scores: np.ndarray, det_areas: np.ndarray, crowd: np.ndarray, truth_ignored: np.ndarray,
           band: tuple[float, float], max_det: int) -> _Matched:
    """Return the greedy matches of one image and class, detections already in descending score order."""
    order = np.argsort(truth_ignored, kind="stable")  # non-ignored boxes are tried first
    iou, crowd, truth_ignored = iou[:max_det][:, order], crowd[order], truth_ignored[order]
    kept = min(max_det, len(scores))
    thresholds = len(IOU_THRESHOLDS)
    matched = np.zeros((thresholds, kept), bool)
    ignored = np.zeros((thresholds, kept), bool)
    for t, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(order), bool)
        for d in range(kept):
            best, chosen = min(threshold, 1 - 1e-10), -1
            for g in range(len(order)):
                if taken[g] and not crowd[g]:
                    continue
                if chosen > -1 and not truth_ignored[chosen] and truth_ignored[g]:
                    break  # every non-ignored box was tried: an ignored one cannot beat a real match
                if iou[d, g] < best:
                    continue
                best, chosen = iou[d, g], g
            if chosen > -1:
                matched[t, d], ignored[t, d] = True, truth_ignored[chosen]
                taken[chosen] = True
    outside = (det_areas[:kept] < band[0]) | (det_areas[:kept] > band[1])
    ignored |= ~matched & outside[None, :]
    return _Matched(scores[:kept], matched, ignored, int((~truth_ignored).sum()))


def _curve(parts: list[_Matched]) -> tuple[np.ndarray, np.ndarray]:
    """Return precision (T, R) and recall (T,) of one class in one band from its images' matches (-1: no boxes)."""
    thresholds = len(IOU_THRESHOLDS)
    truths = sum(p.truths for p in parts)
    if truths == 0:
        return -np.ones((thresholds, len(RECALL_POINTS))), -np.ones(thresholds)
    scores = np.concatenate([p.scores for p in parts]) if parts else np.zeros(0)
    order = np.argsort(-scores, kind="mergesort")
    matched = np.concatenate([p.matched for p in parts], axis=1)[:, order] if parts else np.zeros((thresholds, 0), bool)
    ignored = np.concatenate([p.ignored for p in parts], axis=1)[:, order] if parts else np.zeros((thresholds, 0), bool)
    tp = np.cumsum(matched & ~ignored, axis=1, dtype=float)
    fp = np.cumsum(~matched & ~ignored, axis=1, dtype=float)
    precision, recall = np.zeros((thresholds, len(RECALL_POINTS))), np.zeros(thresholds)
    for t in range(thresholds):
        if not tp.shape[1]:
            continue
        rc = tp[t] / truths
        pr = tp[t] / (tp[t] + fp[t] + np.spacing(1))
        recall[t] = rc[-1]
        pr = np.maximum.accumulate(pr[::-1])[::-1]  # the best precision at this recall or beyond
        at = np.searchsorted(rc, RECALL_POINTS, side="left")
        precision[t] = np.where(at < len(pr), pr[np.minimum(at, len(pr) - 1)], 0.0)
    return precision, recall


def evaluate(truths: Sequence[Truth], detections: Sequence[Detected], classes: Sequence[int] | None = None,
             *, full: bool = True, iou_type: str = "bbox") -> Evaluation:
    """Return COCO's 12 figures, and the precision and recall tables, of `detections` against `truths` (one per image).

    `iou_type` is "bbox" (box AP) or "segm" (mask AP: both sides carry masks).

    With `full=False` only the "all" area band at 100 detections is matched (AP, AP50, AP75 and
    AR100; the rest stay -1), a twelfth of the work, as validation during training needs.
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type is 'bbox' or 'segm', got {iou_type!r}")
    if len(truths) != len(detections):
        raise ValueError(f"{len(truths)} images of ground truth but {len(detections)} of detections")
    if classes is None:
        classes = sorted({int(c) for t in truths for c in t.classes} | {int(c) for d in detections for c in d.classes})
    bands = list(AREAS.values())
    precision = -np.ones((len(IOU_THRESHOLDS), len(RECALL_POINTS), len(classes), len(bands), len(MAX_DETS)))
    recall = -np.ones((len(IOU_THRESHOLDS), len(classes), len(bands), len(MAX_DETS)))
    for k, label in enumerate(classes):
        cases = []
        for truth, found in zip(truths, detections, strict=True):
            g, d = truth.classes == label, found.classes == label
            if not g.any() and not d.any():
                continue  # COCO skips an image with neither
            order = np.argsort(-found.scores[d], kind="mergesort")[: MAX_DETS[-1]]
            crowd = truth.crowd[g].astype(bool)
            iou, areas = _overlaps(truth, g, crowd, found, d, order, iou_type)
            cases.append((iou, found.scores[d][order], areas, crowd, truth.areas[g]))
        for a, band in enumerate(bands):
            for m, max_det in enumerate(MAX_DETS):
                if not full and (a, m) != (0, len(MAX_DETS) - 1):
                    continue
                parts = [_match(iou, scores, areas, crowd, crowd | (t_areas < band[0]) | (t_areas > band[1]), band, max_det)
                         for iou, scores, areas, crowd, t_areas in cases]
                precision[:, :, k, a, m], recall[:, k, a, m] = _curve(parts)
    return Evaluation(_stats(precision, recall), precision, recall, tuple(int(c) for c in classes))


def _stats(precision: np.ndarray, recall: np.ndarray) -> dict[str, float]:
    """Return the 12 figures: means over the defined entries of each slice (-1 when none is defined)."""
    names = list(AREAS)
    out = {}
    for name, kind, threshold, band, max_det in STATS:
        a, m = names.index(band), MAX_DETS.index(max_det)
        values = precision[..., a, m] if kind == "ap" else recall[..., a, m]
        if threshold is not None:
            values = values[np.isclose(IOU_THRESHOLDS, threshold)]
        defined = values[values > -1]
        out[name] = float(defined.mean()) if defined.size else -1.0
    return out
