"""The task seam: what the engine trains for, so the loop itself never says "class" or "pixel".

A Task names the form of its targets, builds the loss from a model's output, counts the
training hits of a batch without a host sync, keeps a Tally of validation and test batches
(loss, confusion matrix, the task's metrics), and says what "best" means.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from cnnlab.data.normalise import Normalisation
from cnnlab.errors import CnnlabError
from cnnlab.runs.info import TaskName
from cnnlab.runs.recipe import LossConfig, Recipe


class Tally(ABC):
    """Running sums over scored batches, on the device: no host sync until `result`."""

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.num_classes = num_classes
        self.loss_sum = torch.zeros((), device=device)
        self.confusion = torch.zeros(num_classes * num_classes, device=device, dtype=torch.long)  # rows: truth
        self.count = 0  # predictions scored: images, or pixels
        self.images = 0

    def add_confusion(self, truth: torch.Tensor, predicted: torch.Tensor) -> None:
        """Count (truth, prediction) pairs of any shape into the confusion matrix."""
        pairs = truth.reshape(-1).long() * self.num_classes + predicted.reshape(-1)
        self.confusion += torch.bincount(pairs, minlength=self.num_classes**2)

    def matrix(self) -> torch.Tensor:
        """Return the confusion matrix (K, K) on the CPU: rows are the true classes."""
        return self.confusion.view(self.num_classes, self.num_classes).cpu()

    @abstractmethod
    def add(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch's float logits and targets."""

    @abstractmethod
    def result(self) -> dict[str, float]:
        """Return the loss and the task's metrics over everything added."""

    @abstractmethod
    def report(self, classes: tuple[str, ...]) -> dict[str, Any]:
        """Return the metrics with per-class figures and the confusion matrix, for eval.json."""


class Task(ABC):
    """What the engine trains a model to do: targets, loss, metrics, and which epoch is best."""

    name: ClassVar[TaskName]
    targets: ClassVar[str]  # the form a batch's targets take, in words
    train_metric: ClassVar[str]  # the hit rate each epoch reports for its training batches
    metrics: ClassVar[tuple[str, ...]]  # validation and test metrics besides the loss
    monitor: ClassVar[str]  # the validation figure whose improvement makes a checkpoint "best"
    higher_is_better: ClassVar[bool]
    headline: ClassVar[tuple[str, ...]]  # the test figures of eval.json that summary.json and the console lead with

    @staticmethod
    @abstractmethod
    def describe(scores: dict[str, Any]) -> str:
        """Return the headline figures of eval.json's `scores` in words, e.g. "accuracy 98.10% (top-5 99.90%)"."""

    def __init__(self, num_classes: int, loss: LossConfig | None = None) -> None:
        self.num_classes = num_classes
        self.config = loss or LossConfig()

    def check(self, recipe: Recipe) -> None:  # noqa: B027 - a task with no restriction keeps this default
        """Raise one line when the recipe asks for something this task cannot do."""

    def attach(self, norm: Normalisation, device: torch.device) -> None:  # noqa: B027 - most tasks need neither
        """Learn the training normalisation and device before the first step (a teacher needs both)."""

    def batch_targets(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the targets `loss` takes for the normalised batch `x`: the batch's own, unless a paradigm adds to them."""
        return target

    @abstractmethod
    def loss(self, output: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (loss, main logits) of a model's training output."""

    @abstractmethod
    def hits(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Return (correct predictions as a device scalar, how many predictions) of a training batch."""

    @abstractmethod
    def tally(self, device: torch.device, full: bool = False) -> Tally:
        """Return an empty Tally for scoring batches on `device`; `full`: every figure eval.json reports, not only validation's."""

    def is_better(self, scores: dict[str, float], best: dict[str, float]) -> bool:
        """Return whether validation `scores` beat the best so far (none yet: they do); a tie goes to the lower loss."""
        if self.monitor not in best:
            return True
        sign = 1.0 if self.higher_is_better else -1.0
        mine, theirs = sign * scores[self.monitor], sign * best[self.monitor]
        return mine > theirs or (mine == theirs and scores["loss"] < best["loss"])


def refuse(ok: bool, message: str) -> None:
    """Raise a one-line error naming what the task refuses and the fix."""
    if not ok:
        raise CnnlabError(message)
