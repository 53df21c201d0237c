"""Segmentation: one class per pixel; pixel accuracy and mean intersection over union."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.data.augment import refuse_uncarried
from cnnlab.data.augment.targets import IGNORE
from cnnlab.data.tta import TTA
from cnnlab.runs.info import TaskName
from cnnlab.runs.recipe import Recipe
from cnnlab.train.tasks.base import Tally, Task, refuse


def iou_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """Return each class's intersection over union (NaN where a class is neither true nor predicted)."""
    confusion = confusion.double()
    intersection = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - intersection
    return torch.where(union > 0, intersection / union.clamp_min(1), torch.full_like(union, float("nan")))


class SegmentationTally(Tally):
    """Per-pixel loss and the confusion matrix, from which pixel accuracy and mIoU follow."""

    def add(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add logits (B, K, H, W) and targets (B, H, W)."""
        target = target.long()
        self.loss_sum += F.cross_entropy(logits, target, reduction="sum")
        self.add_confusion(target, logits.argmax(dim=1))
        self.count += target.numel()
        self.images += len(target)

    def result(self) -> dict[str, float]:
        """Return mean loss per pixel, pixel accuracy and mean IoU over the classes present."""
        confusion = self.matrix()
        total = max(int(confusion.sum()), 1)
        return {
            "loss": self.loss_sum.item() / max(self.count, 1),
            "pixel_acc": confusion.diag().sum().item() / total,
            "miou": iou_per_class(confusion).nanmean().item(),
        }

    def report(self, classes: tuple[str, ...]) -> dict[str, Any]:
        """Return pixel accuracy, mean IoU, loss, per-class IoU and the confusion matrix."""
        scores, confusion = self.result(), self.matrix()
        iou = [None if value != value else value for value in iou_per_class(confusion).tolist()]  # NaN -> null
        return {**scores, "per_class_iou": dict(zip(classes, iou, strict=True)), "confusion_matrix": confusion.tolist()}


class Segmentation(Task):
    """Per-pixel cross-entropy; the best checkpoint has the highest validation mIoU."""

    name = TaskName.SEGMENTATION
    targets = "uint8 or int64 class per pixel (B, H, W)"
    train_metric = "pixel_acc"
    metrics = ("pixel_acc", "miou")
    monitor = "miou"  # the figure segmentation papers report; pixel accuracy is mostly background
    higher_is_better = True
    headline = ("pixel_acc", "miou")

    @staticmethod
    def describe(scores: dict[str, Any]) -> str:
        """Return "pixel accuracy X, mIoU Y"."""
        return f"pixel accuracy {scores['pixel_acc']:.2%}, mIoU {scores['miou']:.3f}"

    def check(self, recipe: Recipe) -> None:
        """Refuse what would move images without their masks: mixing and policies, TTA, resizing."""
        refuse_uncarried(recipe.augment, "masks")
        refuse(recipe.evaluation.tta is TTA.NONE, "segmentation has no test-time augmentation yet: set tta=none")
        refuse(recipe.data.input_size is None and recipe.data.input_pad == 0,
               "segmentation keeps the canvases' size: leave input_size and input_pad unset")
        refuse(recipe.runtime.stream is not True, "segmentation data stay resident: set stream=false")

    def loss(self, output: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (mean per-pixel cross-entropy over the pixels not IGNORE, the logits)."""
        return F.cross_entropy(output, target.long(), ignore_index=IGNORE,
                               label_smoothing=self.config.label_smoothing), output

    def hits(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (correctly classified pixels, pixels), both on the device; IGNORE pixels (moved in by augmentation) count in neither."""
        known = target != IGNORE
        return ((logits.argmax(dim=1) == target) & known).sum(), known.sum()

    def tally(self, device: torch.device, full: bool = False) -> SegmentationTally:
        """Return an empty tally of loss and confusion."""
        return SegmentationTally(self.num_classes, device)
