"""Tasks the engine trains: classification (hard or soft targets), per-pixel segmentation and box detection."""

from __future__ import annotations

from typing import Any

import torch

from cnnlab.data.augment.targets import TargetKind, kind_of
from cnnlab.runs.info import TaskName
from cnnlab.runs.recipe import LossConfig
from cnnlab.train.tasks.base import Tally, Task
from cnnlab.train.tasks.classification import Classification
from cnnlab.train.tasks.detection import Detection
from cnnlab.train.tasks.segmentation import Segmentation

TASKS: dict[TaskName, type[Task]] = {TaskName.CLASSIFICATION: Classification, TaskName.SEGMENTATION: Segmentation,
                                     TaskName.DETECTION: Detection}


def task_for(name: TaskName | str, num_classes: int, loss: LossConfig | None = None) -> Task:
    """Return the Task called `name` for `num_classes` classes."""
    return TASKS[TaskName(name)](num_classes, loss)


def describe(scores: dict[str, Any]) -> str:
    """Return the headline figures of an eval.json result in words, as its task words them."""
    return TASKS[TaskName(scores.get("task", TaskName.CLASSIFICATION))].describe(scores)


def task_of_targets(labels: torch.Tensor) -> TaskName:
    """Return the task a data set's targets imply: one per image classification, one per pixel segmentation, box rows detection."""
    kind = kind_of(labels)
    return {TargetKind.BOXES: TaskName.DETECTION, TargetKind.MASKS: TaskName.SEGMENTATION}.get(kind, TaskName.CLASSIFICATION)


__all__ = ["TASKS", "Classification", "Detection", "Segmentation", "Tally", "Task", "describe", "task_for", "task_of_targets"]
