"""`cnnlab distill`: train a student on a teacher run's soft targets, as an ordinary run directory."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.cli.common import positive_float, positive_int


def register(commands: argparse._SubParsersAction) -> None:
    """Add the distill command."""
    distill = commands.add_parser("distill", help="knowledge distillation: train a student model on teacher runs' soft targets")
    distill.add_argument("--teacher", action="append", required=True,
                         help="run directory of a teacher; repeat it for an ensemble teacher (probabilities averaged)")
    distill.add_argument("--student", required=True, help="zoo name of the student, e.g. lenet5_tiny")
    distill.add_argument("--data", default=None, help="data spec (default: the first teacher's)")
    distill.add_argument("--data-dir", default=None)
    distill.add_argument("--recipe", default=None, help="recipe name or YAML path (default: the first teacher's recipe.yaml)")
    distill.add_argument("--temperature", type=positive_float, default=None, help="shortcut for paradigm.distill.temperature")
    distill.add_argument("--alpha", type=float, default=None, help="shortcut for paradigm.distill.alpha (weight of the soft term)")
    distill.add_argument("--epochs", type=positive_int, default=None, help="shortcut for epochs=N")
    distill.add_argument("--seed", type=int, default=None, help="shortcut for seed=N")
    distill.add_argument("--out", default=None, help="run directory (default runs/DATA-STUDENT)")
    distill.add_argument("--device", default="auto")
    distill.add_argument("overrides", nargs="*", help="recipe overrides key=value")
    distill.set_defaults(func=run_distill)


def run_distill(args: argparse.Namespace) -> int:
    """Train the student with the teachers named in its recipe's paradigm.distill section."""
    from cnnlab.runs.info import RunInfo
    from cnnlab.train.run import train_run

    teachers = [str(Path(t).resolve()) for t in args.teacher]  # the recipe must still find them from elsewhere
    first = RunInfo.read(Path(teachers[0]))
    shortcuts = [f"{key}={value}" for key, value in (
        ("paradigm.distill.temperature", args.temperature), ("paradigm.distill.alpha", args.alpha),
        ("epochs", args.epochs), ("seed", args.seed)) if value is not None]
    result = train_run(model=args.student, data=args.data or first.spec, out=args.out, data_dir=args.data_dir,
                       recipe_name=args.recipe or str(Path(teachers[0]) / "recipe.yaml"),
                       # The teacher's own paradigms (its snapshots, its averaging) are not the student's.
                       overrides=("paradigm.snapshot.enabled=false", "paradigm.swa.start_epoch=null",
                                  f"paradigm.distill.teachers={json.dumps(teachers)}", *shortcuts, *args.overrides),
                       device=args.device)
    return 0 if result else 1
