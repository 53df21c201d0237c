"""Classification: one class per image, hard labels (int64) or soft targets (probabilities)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.models.base import AuxOutput
from cnnlab.runs.info import TaskName
from cnnlab.train.tasks.base import Tally, Task

#: Most confident mistakes a tally keeps (the report's thumbnails), and confused pairs it lists.
MISTAKES_KEPT = 32
PAIRS_LISTED = 10


class ClassificationTally(Tally):
    """Loss, top-1, top-5, the confusion matrix and the most confident mistakes of scored images."""

    def __init__(self, num_classes: int, device: torch.device) -> None:
        super().__init__(num_classes, device)
        self.top1 = torch.zeros((), device=device)
        self.top5 = torch.zeros((), device=device)
        # (confidence, index in scoring order, truth, prediction) of the surest wrong answers so far.
        self.mistakes = torch.zeros(0, 4, device=device)

    def add(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of logits (B, K) and labels (B,)."""
        self.loss_sum += F.cross_entropy(logits, target, reduction="sum")
        ranked = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (B, k)
        self.top1 += (ranked[:, 0] == target).sum()
        self.top5 += (ranked == target[:, None]).any(dim=1).sum()
        self.add_confusion(target, ranked[:, 0])
        self._keep_mistakes(logits, target, ranked[:, 0])
        self.count += len(target)
        self.images += len(target)

    def _keep_mistakes(self, logits: torch.Tensor, target: torch.Tensor, predicted: torch.Tensor) -> None:
        """Merge this batch's wrong answers into the running top-k by confidence, on the device."""
        confidence = logits.float().softmax(dim=1).amax(dim=1)
        confidence = torch.where(predicted != target, confidence, -1.0)  # right answers never rank
        index = torch.arange(self.images, self.images + len(target), device=logits.device)
        batch = torch.stack([confidence, index.float(), target.float(), predicted.float()], dim=1)
        merged = torch.cat([self.mistakes, batch])
        self.mistakes = merged[merged[:, 0].topk(min(MISTAKES_KEPT, len(merged))).indices]

    def result(self) -> dict[str, float]:
        """Return mean loss per image, top-1 (acc) and top-5."""
        n = max(self.count, 1)
        return {"loss": self.loss_sum.item() / n, "acc": self.top1.item() / n, "top5": self.top5.item() / n}

    def report(self, classes: tuple[str, ...]) -> dict[str, Any]:
        """Return top-1, top-5, loss, per-class accuracy (= recall) and precision, confused pairs, mistakes, confusion."""
        scores, confusion = self.result(), self.matrix()
        hits = confusion.diag().float()
        recall = (hits / confusion.sum(1).clamp_min(1)).tolist()
        precision = (hits / confusion.sum(0).clamp_min(1)).tolist()  # of the images predicted as the class
        off = confusion.clone().fill_diagonal_(0).flatten()
        counts, cells = off.topk(min(PAIRS_LISTED, len(off)))
        pairs = [(int(c), divmod(int(i), self.num_classes)) for c, i in zip(counts, cells, strict=True) if c > 0]
        mistakes = [{"index": int(i), "true": classes[int(t)], "predicted": classes[int(p)], "confidence": round(float(c), 6)}
                    for c, i, t, p in self.mistakes.cpu().tolist() if c >= 0]
        return {
            "top1": scores["acc"], "top5": scores["top5"], "loss": scores["loss"],
            "per_class_accuracy": dict(zip(classes, recall, strict=True)),
            "per_class_precision": dict(zip(classes, precision, strict=True)),
            "most_confused": [{"true": classes[t], "predicted": classes[p], "count": c} for c, (t, p) in pairs],
            "worst_mistakes": mistakes,
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
    headline = ("top1", "top5")

    @staticmethod
    def describe(scores: dict[str, Any]) -> str:
        """Return "accuracy X (top-5 Y)"."""
        return f"accuracy {scores['top1']:.2%} (top-5 {scores['top5']:.2%})"

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

    def tally(self, device: torch.device, full: bool = False) -> ClassificationTally:
        """Return an empty tally of loss, top-1, top-5 and confusion."""
        return ClassificationTally(self.num_classes, device)
