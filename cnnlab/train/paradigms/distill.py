"""Knowledge distillation (Hinton et al. 2015): a student trained on its labels and on teachers' soft targets.

The teachers are finished run directories, read by `load_run`; several average their softened
probabilities into one ensemble teacher. The soft targets travel through the task seam: each
batch's target becomes (teacher probabilities | label probabilities), one float tensor (B, 2K),
so the engine's loop does not change. The student's teachers.json records which weights taught it
(run, checkpoint, digest), and resuming refuses a teacher whose weights changed in between.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from cnnlab.data.normalise import Normalisation
from cnnlab.errors import CnnlabError
from cnnlab.runs.info import RunInfo, TaskName
from cnnlab.runs.load import Run, load_run, weights_digest
from cnnlab.runs.paradigm import DistillConfig
from cnnlab.runs.recipe import LossConfig
from cnnlab.runs.rundir import write_json
from cnnlab.train.tasks import Classification, Task

TEACHERS = "teachers.json"  # in the student's run directory


class Distillation(Classification):
    """Classification whose loss adds alpha * T^2 * KL(teachers at T || student at T) to (1 - alpha) * the labels' loss."""

    def __init__(self, num_classes: int, loss: LossConfig | None, config: DistillConfig,
                 classes: tuple[str, ...], input_size: tuple[int, ...]) -> None:
        super().__init__(num_classes, loss)
        self.distill = config
        self.classes, self.input_size = tuple(classes), tuple(input_size)
        self.teachers: list[tuple[Run, torch.Tensor, torch.Tensor]] = []

    def attach(self, norm: Normalisation, device: torch.device) -> None:
        """Load every teacher on `device` and the per-channel map from the student's normalisation to its own."""
        self.teachers = []
        for path in self.distill.teachers:
            teacher = load_run(path, device=device)
            check_teacher(teacher.info, path, self.classes, self.input_size)
            for p in teacher.model.parameters():
                p.requires_grad_(False)
            # x_student = (p - m_s) / s_s  ->  x_teacher = (p - m_t) / s_t = x_student * s_s / s_t + (m_s - m_t) / s_t
            ours, theirs = norm, teacher.normalisation
            scale = torch.tensor([a / b for a, b in zip(ours.std, theirs.std, strict=True)], device=device)
            shift = torch.tensor([(m - n) / b for m, n, b in zip(ours.mean, theirs.mean, theirs.std, strict=True)],
                                 device=device)
            self.teachers.append((teacher, scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1)))

    def teachers_used(self) -> list[dict[str, Any]]:
        """Return each teacher's run, checkpoint, EMA flag and weights digest, as teachers.json records them."""
        return [{"run": str(teacher.path), "checkpoint": teacher.checkpoint, "ema": teacher.ema,
                 "weights_sha256": weights_digest(teacher.model)} for teacher, _, _ in self.teachers]

    @torch.no_grad()
    def teacher_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Return the teachers' mean softmax at the temperature (B, K) for a batch normalised as the student's."""
        total = None
        for teacher, scale, shift in self.teachers:
            logits = teacher.model(x * scale + shift).float()
            probabilities = (logits / self.distill.temperature).softmax(dim=1)
            total = probabilities if total is None else total + probabilities
        return total / len(self.teachers)

    def batch_targets(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return (teacher probabilities | label probabilities) (B, 2K): hard labels become one-hot rows."""
        labels = target.float() if target.is_floating_point() else F.one_hot(target, self.num_classes).float()
        return torch.cat([self.teacher_probabilities(x), labels], dim=1)

    def loss(self, output: Any, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (alpha T^2 KL + (1 - alpha) label loss, main logits) for a (B, 2K) target of batch_targets."""
        teacher, labels = target[:, : self.num_classes], target[:, self.num_classes :]
        hard, logits = super().loss(output, labels)
        temperature, alpha = self.distill.temperature, self.distill.alpha
        student = F.log_softmax(logits.float() / temperature, dim=1)
        soft = F.kl_div(student, teacher, reduction="batchmean") * temperature**2  # Hinton et al. Sec. 2
        return alpha * soft + (1.0 - alpha) * hard, logits

    def hits(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Return (images whose arg-max is the label's, batch size): the teachers do not count."""
        return super().hits(logits, target[:, self.num_classes :])


def record_teachers(run: Path, task: Task) -> None:
    """Write the teachers a student learns from to teachers.json; on resume, refuse teachers that changed since."""
    if not isinstance(task, Distillation):
        return
    used, path = task.teachers_used(), run / TEACHERS
    if path.is_file():
        try:
            recorded = json.loads(path.read_text())
            then = {(t["run"], t["weights_sha256"]) for t in recorded}
        except (ValueError, TypeError, KeyError) as error:
            raise CnnlabError(f"{path} is damaged ({error}): restore it, or delete it to record the teachers as they are now") from None
        for teacher in used:
            if (teacher["run"], teacher["weights_sha256"]) not in then:
                raise CnnlabError(f"teacher {teacher['run']} ({teacher['checkpoint']} weights) is not the teacher this student "
                                  f"started with ({path} records another): restore that teacher, or train a new student")
        return
    write_json(path, used)


def check_teacher(info: RunInfo, path: str, classes: tuple[str, ...], input_size: tuple[int, ...]) -> None:
    """Raise one line when a teacher run cannot teach this student: another task, other classes or another input."""
    if info.task is not TaskName.CLASSIFICATION:
        raise CnnlabError(f"teacher {path} is a {info.task.value} run: distillation teaches classifiers; give a classification run")
    if tuple(info.classes) != tuple(classes):
        raise CnnlabError(f"teacher {path} knows the classes {list(info.classes)[:5]}..., the student's data "
                          f"has {list(classes)[:5]}...: distil on the teacher's own data")
    if tuple(info.input_size) != tuple(input_size):
        size = "x".join(map(str, info.input_size))
        raise CnnlabError(f"teacher {path} reads {size} inputs, the student {'x'.join(map(str, input_size))}: "
                          f"give the student the teacher's data.input_size and data.input_pad")


def paradigm_task(task: Task, config: DistillConfig, classes: tuple[str, ...], input_size: tuple[int, ...]) -> Task:
    """Return the task a run trains for: `task` itself, or its distillation when the recipe names teachers."""
    if not config.teachers:
        return task
    if task.name is not TaskName.CLASSIFICATION:
        raise CnnlabError(f"paradigm.distill teaches classifiers; this is {task.name.value} data: leave teachers out")
    return Distillation(task.num_classes, task.config, config, classes, input_size)
