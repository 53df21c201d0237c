"""Classification: one class per image, hard labels (int64) or soft targets (probabilities)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.models.base import AuxOutput
from cnnlab.runs.info import TaskName
from cnnlab.train.tasks.base import Tally, Task


class ClassificationTally(Tally):
    """Loss, top-1, top-5 and the confusion matrix of scored images."""

    def __init__(self, num_classes: int, device: torch.device) -> None:
        super().__init__(num_classes, device)
        self.top1 = torch.zeros((), device=device)
        self.top5 = torch.zeros((), device=device)

    def add(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of logits (B, K) and labels (B,)."""
        self.loss_sum += F.cross_entropy(logits, target, reduction="sum")
        ranked = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (B, k)
        self.top1 += (ranked[:, 0] == target).sum()
        self.top5 += (ranked == target[:, None]).any(dim=1).sum()
        self.add_confusion(target, ranked[:, 0])
        self.count += len(target)
        self.images += len(target)

    def result(self) -> dict[str, float]:
        """Return mean loss per image, top-1 (acc) and top-5."""
        n = max(self.count, 1)
        return {"loss": self.loss_sum.item() / n, "acc": self.top1.item() / n, "top5": self.top5.item() / n}

    def report(self, classes: tuple[str, ...]) -> dict[str, Any]:
        """Return top-1, top-5, loss, per-class accuracy and the confusion matrix."""
        scores, confusion = self.result(), self.matrix()
        per_class = (confusion.diag().float() / confusion.sum(1).clamp_min(1)).tolist()
        return {
            "top1": scores["acc"], "top5": scores["top5"], "loss": scores["loss"],
            "per_class_accuracy": dict(zip(classes, per_class, strict=True)),
            "confusion_matrix": confusion.tolist(),
        }


class Classification(Task):
    """Cross-entropy with label smoothing (auxiliary heads add aux_loss_weight times theirs); best = top-1."""

    name = TaskName.CLASSIFICATION
    targets = "int64 class per image (B,), or float probabilities (B, K) for soft targets"
    train_metric = "acc"
    metrics = ("acc", "top5")
    # timm's checkpoint saver keeps the best top-1 too. The lowest loss is a worse guide with label
    # smoothing: on lenet-mnist it chose epochs whose test accuracy was up to 0.2 points lower.
    monitor = "acc"
    higher_is_better = True

    def loss(self, output: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (loss, main logits); soft targets (B, K) use the probability form of cross-entropy."""
        logits = output.logits if isinstance(output, AuxOutput) else output
        smoothing = self.config.label_smoothing
        loss = F.cross_entropy(logits, target, label_smoothing=smoothing)
        for aux in getattr(output, "aux", ()):
            loss = loss + self.config.aux_loss_weight * F.cross_entropy(aux, target, label_smoothing=smoothing)
        return loss, logits

    def hits(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Return (images whose arg-max is the label, or the soft target's arg-max; batch size)."""
        labels = target.argmax(dim=1) if target.is_floating_point() else target
        return (logits.argmax(dim=1) == labels).sum(), len(target)

    def tally(self, device: torch.device) -> ClassificationTally:
        """Return an empty tally of loss, top-1, top-5 and confusion."""
        return ClassificationTally(self.num_classes, device)
