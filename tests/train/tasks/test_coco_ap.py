"""COCO box AP against pycocotools' COCOeval (a test reference only), on synthetic predictions and hand-made cases."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from cnnlab.data.coco_masks import encode_rle
from cnnlab.train.tasks.coco_ap import STATS, Detected, Truth, box_iou, evaluate, mask_iou

pytest.importorskip("pycocotools")


def _scene(seed: int, images: int = 12, classes: int = 4) -> tuple[list[Truth], list[Detected]]:
    """Return ground truth with crowd boxes and all three area bands, and detections: jittered truth plus > 100 random ones."""
    rng = np.random.default_rng(seed)
    truths, found = [], []
    for image in range(images):
        count = 0 if image == 3 else int(rng.integers(1, 9))  # image 3 has no ground truth
        xy = rng.uniform(0, 400, (count, 2))
        wh = np.exp(rng.uniform(np.log(8), np.log(200), (count, 2)))
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, classes, count)
        crowd = rng.random(count) < 0.1
        areas = wh.prod(1) * rng.uniform(0.6, 1.0, count)  # COCO's area is the mask's, below the box's
        truths.append(Truth(boxes, labels, crowd, areas))
        copies = np.repeat(np.arange(count), 2)
        jitter = boxes[copies] + rng.normal(0, 1, (len(copies), 4)) * wh[copies].repeat(2, 1) * 0.08
        jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2] + 1)
        noise_xy = rng.uniform(0, 450, (110, 2))
        noise = np.concatenate([noise_xy, noise_xy + rng.uniform(4, 150, (110, 2))], 1)
        d_boxes = np.concatenate([jitter, noise])
        d_labels = np.concatenate([np.where(rng.random(len(copies)) < 0.85, labels[copies], rng.integers(0, classes, len(copies))),
                                   rng.integers(0, classes, 110)])
        # Rounded: many ties, which both must break the same way; the copies of truth mostly score above the noise.
        scores = np.round(np.concatenate([rng.uniform(0.3, 1.0, len(copies)), rng.uniform(0.0, 0.6, 110)]), 2)
        found.append(Detected(d_boxes, scores, d_labels))
    return truths, found


def _cocoeval(truths: list[Truth], found: list[Detected], classes: int, iou_type: str = "bbox") -> np.ndarray:
    """Return pycocotools' 12 stats for the same scene (masks as RLEs for "segm")."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    for index, (truth, detected) in enumerate(zip(truths, found, strict=True)):
        images.append({"id": index + 1, "width": 640, "height": 640})
        for row, (box, label, crowd, area) in enumerate(zip(truth.boxes, truth.classes, truth.crowd, truth.areas, strict=True)):
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": int(label) + 1,
                                "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "area": float(area),
                                "iscrowd": int(crowd)})
            if iou_type == "segm":
                annotations[-1]["segmentation"] = encode_rle(truth.masks[row])
        for row, (box, score, label) in enumerate(zip(detected.boxes, detected.scores, detected.classes, strict=True)):
            results.append({"image_id": index + 1, "category_id": int(label) + 1, "score": float(score),
                            "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})
            if iou_type == "segm":
                results[-1] = {**results[-1], "segmentation": encode_rle(detected.masks[row])}
                del results[-1]["bbox"]
    with contextlib.redirect_stdout(io.StringIO()):
        ground = COCO()
        ground.dataset = {"images": images, "annotations": annotations,
                          "categories": [{"id": c + 1, "name": str(c)} for c in range(classes)]}
        ground.createIndex()
        evaluation = COCOeval(ground, ground.loadRes(results), iou_type)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_all_twelve_stats_equal_cocoeval(seed: int) -> None:
    truths, found = _scene(seed)
    ours = evaluate(truths, found, classes=range(4))
    theirs = _cocoeval(truths, found, 4)
    assert [name for name, *_ in STATS] == list(ours.stats)
    np.testing.assert_allclose(list(ours.stats.values()), theirs, atol=1e-4)
    assert 0.1 < ours.stats["AP50"] < 0.99 and ours.stats["AP_small"] != -1  # a scene that tests something


def test_hand_made_cases_equal_cocoeval() -> None:
    """Duplicates of one box, a crowd box that absorbs several detections, an image without truth, no large boxes (-1)."""
    box = np.array([[10.0, 10.0, 40.0, 40.0]])
    truths = [Truth(box, np.array([0]), np.array([False]), np.array([900.0])),
              Truth(np.array([[0.0, 0.0, 60.0, 60.0], [100.0, 100.0, 120.0, 120.0]]), np.array([0, 0]),
                    np.array([True, False]), np.array([3600.0, 400.0])),
              Truth(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0, bool), np.zeros(0))]
    found = [Detected(np.repeat(box, 3, 0), np.array([0.9, 0.9, 0.8]), np.array([0, 0, 0])),
             Detected(np.array([[5.0, 5.0, 30.0, 30.0], [20.0, 20.0, 50.0, 50.0], [101.0, 101.0, 121.0, 119.0]]),
                      np.array([0.95, 0.7, 0.6]), np.array([0, 0, 0])),
             Detected(np.array([[1.0, 1.0, 9.0, 9.0]]), np.array([0.99]), np.array([0]))]
    ours = evaluate(truths, found, classes=[0])
    np.testing.assert_allclose(list(ours.stats.values()), _cocoeval(truths, found, 1), atol=1e-4)
    assert ours.stats["AP_large"] == -1  # no box in the band: undefined, as COCO prints it


def _ellipses(boxes: np.ndarray, side: int) -> np.ndarray:
    """Return the filled ellipses (K, side, side) inscribed in x1y1x2y2 boxes."""
    masks = np.zeros((len(boxes), side, side), bool)
    for mask, (x1, y1, x2, y2) in zip(masks, boxes, strict=True):
        top, left = max(int(y1), 0), max(int(x1), 0)
        rows, cols = np.ogrid[top:min(int(y2) + 1, side), left:min(int(x2) + 1, side)]
        inside = ((cols + 0.5 - (x1 + x2) / 2) / ((x2 - x1) / 2)) ** 2 + ((rows + 0.5 - (y1 + y2) / 2) / ((y2 - y1) / 2)) ** 2 <= 1
        mask[top:top + inside.shape[0], left:left + inside.shape[1]] = inside
    return masks


def test_mask_ap_equals_cocoeval_segm() -> None:
    """Mask AP: the same scenes with every box's inscribed ellipse as its mask, the truth's area the mask's pixel count."""
    side = 448
    truths, found = _scene(0, images=5)
    truths = [Truth(t.boxes, t.classes, t.crowd, _ellipses(t.boxes, side).sum((1, 2)).astype(float), _ellipses(t.boxes, side))
              for t in truths]
    found = [Detected(f.boxes, f.scores, f.classes, _ellipses(f.boxes, side)) for f in found]
    ours = evaluate(truths, found, classes=range(4), iou_type="segm")
    np.testing.assert_allclose(list(ours.stats.values()), _cocoeval(truths, found, 4, "segm"), atol=1e-4)
    assert 0.1 < ours.stats["AP50"] < 0.99 and ours.stats["AP_large"] != -1
    assert ours.stats != evaluate(truths, found, classes=range(4)).stats  # masks, not boxes, were matched
    # An image without detections may bring no masks, and one without truth no masks either.
    empty = [Truth(np.zeros((0, 4)), np.zeros(0, int), np.zeros(0, bool), np.zeros(0)),
             Truth(truths[0].boxes, truths[0].classes, truths[0].crowd, truths[0].areas, truths[0].masks)]
    nothing = [Detected(found[0].boxes, found[0].scores, found[0].classes, found[0].masks),
               Detected(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))]
    assert evaluate(empty, nothing, classes=range(4), iou_type="segm").stats["AP"] == 0.0


def test_iou_by_hand() -> None:
    iou = box_iou(np.array([[0.0, 0.0, 2.0, 2.0]]), np.array([[1.0, 1.0, 3.0, 3.0], [1.0, 1.0, 3.0, 3.0]]),
                  np.array([False, True]))
    np.testing.assert_allclose(iou, [[1 / 7, 1 / 4]])  # union 7; against a crowd, the detection's own area 4
    square = np.zeros((1, 3, 3), bool)
    square[0, :2, :2] = True
    np.testing.assert_allclose(mask_iou(square, np.roll(square, 1, (1, 2)).repeat(2, 0), np.array([False, True])),
                               [[1 / 7, 1 / 4]])
