"""Noisy Student's rounds (Xie et al. 2020): a teacher, then students each taught by the one before, and their table.

Each round is an ordinary run directory whose recipe names its teacher; the pseudo-labelling
inside a round is cnnlab.train.paradigms.pseudo_labels. A finished round is kept and an
interrupted one resumed, so the chain can be stopped and run again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from cnnlab.errors import CnnlabError
from cnnlab.runs.rundir import write_json
from cnnlab.workflows.runs import train_or_resume


def noisy_student(data: str, teacher_model: str, student_model: str, out: str | Path, labelled_fraction: float,
                  rounds: int = 3, recipe: str | None = None, overrides: tuple[str, ...] = (),
                  teacher_overrides: tuple[str, ...] = (), data_dir: str | None = None, device: str = "auto",
                  console: Console | None = None) -> dict[str, Any]:
    """Train the teacher on the labelled part, then `rounds` students, each taught by the one before; return the table.

    `teacher_overrides` apply to the first teacher only: its few labelled images need more epochs
    than the students, whose epochs also pass over the pseudo-labelled part.
    """
    if rounds < 1:
        raise CnnlabError("--rounds must be >= 1: one round is one student")
    out = Path(out)
    if out.is_file():
        raise CnnlabError(f"{out} is a file: give --out a folder for the rounds' run directories")
    out.mkdir(parents=True, exist_ok=True)
    common = (f"data.labelled_fraction={labelled_fraction}", *overrides)
    chain = [("teacher", teacher_model)] + [(f"round-{k}", student_model) for k in range(1, rounds + 1)]
    rows: list[dict[str, Any]] = []
    for name, model in chain:
        teacher = rows[-1]["run"] if rows else None  # each student is the next round's teacher
        extra = teacher_overrides if teacher is None else (f"paradigm.noisy_student.teacher={json.dumps(teacher)}",)
        summary = train_or_resume(out / name, model=model, data=data, recipe_name=recipe,
                                  overrides=(*common, *extra), data_dir=data_dir, device=device, console=console)
        rows.append({"run": str((out / name).resolve()), "name": name, "model": model, "teacher": teacher,
                     "test_top1": summary["test_top1"], "seconds": summary["training_seconds"]})
    table = {"data": data, "labelled_fraction": labelled_fraction, "rounds": rows}
    write_json(out / "rounds.json", table)
    return table
