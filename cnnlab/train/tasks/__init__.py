"""Tasks the engine trains: classification (hard or soft targets) and per-pixel segmentation."""

from __future__ import annotations

import torch

from cnnlab.runs.info import TaskName
from cnnlab.runs.recipe import LossConfig
from cnnlab.train.tasks.base import Tally, Task
from cnnlab.train.tasks.classification import Classification
from cnnlab.train.tasks.segmentation import Segmentation

TASKS: dict[TaskName, type[Task]] = {TaskName.CLASSIFICATION: Classification, TaskName.SEGMENTATION: Segmentation}


def task_for(name: TaskName | str, num_classes: int, loss: LossConfig | None = None) -> Task:
    """Return the Task called `name` for `num_classes` classes."""
    return TASKS[TaskName(name)](num_classes, loss)


def task_of_targets(labels: torch.Tensor) -> TaskName:
    """Return the task a data set's targets imply: one per image is classification, one per pixel segmentation."""
    return TaskName.SEGMENTATION if labels.ndim > 1 else TaskName.CLASSIFICATION


__all__ = ["TASKS", "Classification", "Segmentation", "Tally", "Task", "task_for", "task_of_targets"]
