"""Detection: boxes and their classes; the model's own loss, COCO's average precision, best = AP at 0.5:0.95.

Targets are a padded (B, M, 5) float tensor of (class, x1, y1, x2, y2) rows in input pixels,
class -1 padding, so a batch stays one tensor on the device; a sixth column, where the data has
one (`coco:PATH`), is the object's own area, which COCO's area bands use, and a seventh, after
MixUp, the object's weight in the loss (cnnlab.models.detector.AREA, WEIGHT).
The model returns a DetectorOutput (cnnlab.models.detector) that knows its loss; its candidates
are decoded here (a score threshold, per-class NMS by torchvision's batched_nms, the top 100 per
image) and scored with COCO's protocol (cnnlab.train.tasks.coco_ap). Crowd regions are left out
when the data is read, so no box is a crowd here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cnnlab.data.augment import refuse_uncarried
from cnnlab.data.boxes import object_areas
from cnnlab.data.tta import TTA
from cnnlab.models.detector import DetectorOutput
from cnnlab.runs.info import TaskName
from cnnlab.runs.recipe import Adversary, Recipe
from cnnlab.train.tasks.base import Tally, Task, refuse
from cnnlab.train.tasks.coco_ap import (
    IOU_THRESHOLDS,
    RECALL_POINTS,
    Detected,
    Evaluation,
    Truth,
    evaluate,
)
from cnnlab.train.tasks.postprocess import Detections, detect

#: Decoding for scoring (torchvision's detectors default to a 0.05 score threshold and 100 per image).
SCORE_THRESHOLD = 0.05
NMS_IOU = 0.5
TOP_K = 100


def truth_of(target: torch.Tensor) -> Truth:
    """Return one image's ground truth from its padded rows (M, 5), on the CPU."""
    real = target[target[:, 0] >= 0].double()
    rows = real.cpu().numpy()
    areas = object_areas(real).cpu().numpy()  # COCO's own area where the data carries it
    return Truth(rows[:, 1:5].reshape(-1, 4), rows[:, 0].astype(np.int64), np.zeros(len(rows), dtype=bool), areas)


def detected_of(found: Detections) -> Detected:
    """Return one image's detections as the COCO evaluation takes them, on the CPU."""
    return Detected(found.boxes.double().cpu().numpy().reshape(-1, 4), found.scores.double().cpu().numpy(),
                    found.classes.cpu().numpy())


def detections(output: DetectorOutput) -> list[Detections]:
    """Return each image's scored detections: threshold, per-class NMS, the top 100."""
    boxes, scores = output.candidates()
    return detect(boxes.detach().float(), scores.detach().float(), score_threshold=SCORE_THRESHOLD,
                  iou_threshold=NMS_IOU, top_k=TOP_K)


class DetectionTally(Tally):
    """The loss and every image's truth and detections, from which COCO's AP follows."""

    def __init__(self, num_classes: int, device: torch.device, full: bool = False) -> None:
        super().__init__(num_classes, device)
        self.full = full  # all 12 figures (eval), or AP, AP50, AP75 and AR100 only (validation while training)
        self.truths: list[Truth] = []
        self.found: list[Detected] = []
        self._evaluation: tuple[int, Evaluation] | None = None

    def add(self, logits: DetectorOutput, target: torch.Tensor) -> None:
        """Add one batch's detector output and padded targets (B, M, 5)."""
        self.loss_sum += logits.loss(target).detach() * len(target)
        self.truths += [truth_of(t) for t in target]
        self.found += [detected_of(d) for d in detections(logits)]
        self.count += len(target)
        self.images += len(target)

    def evaluation(self) -> Evaluation:
        """Return COCO's evaluation of everything added (computed once per state)."""
        if self._evaluation is None or self._evaluation[0] != self.images:
            result = evaluate(self.truths, self.found, range(self.num_classes), full=self.full)
            self._evaluation = (self.images, result)
        return self._evaluation[1]

    def result(self) -> dict[str, float]:
        """Return the mean loss per image, AP (IoU 0.5:0.95), AP50 and AP75."""
        stats = self.evaluation().stats
        return {"loss": self.loss_sum.item() / max(self.count, 1), "ap": stats["AP"], "ap50": stats["AP50"],
                "ap75": stats["AP75"]}

    def report(self, classes: tuple[str, ...]) -> dict[str, Any]:
        """Return the loss, COCO's 12 figures, per-class AP and AP50, and each class's precision-recall curve at IoU 0.5."""
        evaluation = self.evaluation()
        at_50 = int(np.argmin(np.abs(IOU_THRESHOLDS - 0.5)))
        curves = evaluation.precision[at_50, :, :, 0, -1]  # (R, K): all areas, 100 detections
        ap50 = {classes[k]: float(c[c > -1].mean()) if (c > -1).any() else -1.0 for k, c in enumerate(curves.T)}
        return {
            **self.result(), "stats": evaluation.stats,
            "per_class_ap": {classes[k]: v for k, v in evaluation.per_class_ap().items()},
            "per_class_ap50": ap50,
            "pr_curves": {"iou": 0.5, "recall": RECALL_POINTS.round(2).tolist(),
                          "precision": {classes[k]: curves[:, k].round(6).tolist() for k in range(len(classes))}},
        }


class Detection(Task):
    """The detector's own loss; the best checkpoint has the highest validation AP at IoU 0.5:0.95."""

    name = TaskName.DETECTION
    targets = "float (B, M, 5) rows of (class, x1, y1, x2, y2) in input pixels, class -1 padding (a sixth: the area)"
    train_metric = "cls_acc"  # objects whose responsible place predicts their class
    metrics = ("ap", "ap50", "ap75")
    monitor = "ap"  # COCO's headline figure
    higher_is_better = True
    headline = ("ap", "ap50", "ap75")

    @staticmethod
    def describe(scores: dict[str, Any]) -> str:
        """Return "AP X (AP50 Y, AP75 Z)": COCO's box AP at IoU 0.5:0.95, 0.5 and 0.75."""
        return f"AP {scores['ap']:.3f} (AP50 {scores['ap50']:.3f}, AP75 {scores['ap75']:.3f})"

    def check(self, recipe: Recipe) -> None:
        """Refuse what would move images without their boxes, and what only classifiers take."""
        refuse_uncarried(recipe.augment, "boxes")
        refuse(recipe.evaluation.tta is TTA.NONE, "detection has no test-time augmentation: set tta=none")
        refuse(recipe.runtime.stream is not True, "detection data stay resident: set stream=false")
        refuse(recipe.loss.label_smoothing == 0, "label smoothing is a classifier's: detectors have their own loss; "
               "set label_smoothing=0")
        refuse(recipe.adversarial.method is Adversary.NONE, "adversarial training attacks a classifier's loss: "
               "leave adversarial out for detection")

    def loss(self, output: Any, target: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Return (the detector's loss, its output)."""
        return output.loss(target), output

    def hits(self, logits: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (objects whose responsible place predicts their class, objects) as device scalars."""
        return logits.hits(target)

    def tally(self, device: torch.device, full: bool = False) -> DetectionTally:
        """Return an empty tally; `full` computes all 12 COCO figures (eval), else the four validation needs."""
        return DetectionTally(self.num_classes, device, full)
