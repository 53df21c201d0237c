"""What every experiment shares: arms trained at one budget of optimiser steps, a table, and its claims.

A budget is a number of optimiser steps on a stated training subset, so that it means the same
work on every machine; the epochs follow from it. Each arm is an ordinary run directory under
the experiment's folder: an arm already finished is kept, an interrupted one is resumed. The
table holds each arm's last-epoch training loss and accuracy, its test top-1 and its time, and
each claim the course makes is checked against it and reported as holding or not.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from cnnlab.errors import CnnlabError
from cnnlab.runs.info import RunInfo
from cnnlab.runs.load import run_recipe
from cnnlab.runs.recipe import Recipe, load_recipe
from cnnlab.runs.rundir import write_json
from cnnlab.workflows.runs import train_or_resume


@dataclass(frozen=True)
class Budget:
    """How much each arm trains: optimiser steps of `batch_size` images drawn from `train_images` images."""

    steps: int
    train_images: int
    batch_size: int = 128
    # Further overrides the budget needs, e.g. a smaller validation split where scoring it every
    # epoch would cost more than the training (the ablation's 10,000 validation images on a CPU).
    extra: tuple[str, ...] = ()

    def epochs(self) -> int:
        """Return the whole epochs that make at least `steps` steps."""
        return max(1, math.ceil(self.steps / self.steps_per_epoch()))

    def steps_per_epoch(self) -> int:
        """Return the optimiser steps of one pass over the subset."""
        return math.ceil(self.train_images / self.batch_size)

    def overrides(self) -> tuple[str, ...]:
        """Return the recipe overrides that give every arm this budget."""
        return (f"epochs={self.epochs()}", f"batch_size={self.batch_size}", f"data.train_images={self.train_images}",
                *self.extra)


@dataclass(frozen=True)
class Arm:
    """One arm of an experiment: a model and the recipe overrides that make it differ from the others."""

    name: str
    model: str
    overrides: tuple[str, ...] = ()
    spec_modifiers: str = ""  # appended to the experiment's data spec, e.g. "@permuted" or "@5-9"
    source: str | None = None  # an earlier arm whose run this one fine-tunes (paradigm.finetune.source)


@dataclass(frozen=True)
class Claim:
    """What the course says the table shows, as a test on its rows (keyed by arm name)."""

    text: str
    holds: Callable[[dict[str, dict[str, Any]]], bool]


@dataclass(frozen=True)
class Experiment:
    """An experiment: its arms, the recipe they share, the budgets it offers and the claims it checks."""

    name: str
    description: str
    data: str
    recipe: str
    arms: tuple[Arm, ...]
    budgets: dict[str, Budget]
    claims: tuple[Claim, ...]


def _last_epoch(run: Path) -> dict[str, str]:
    """Return the last row of a run's metrics.csv."""
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    return rows[-1]


def run_experiment(experiment: Experiment, out: str | Path, budget: str | Budget = "default", data: str | None = None,
                   data_dir: str | None = None, seed: int = 0, device: str = "auto",
                   console: Console | None = None) -> dict[str, Any]:
    """Train every arm of `experiment` under `out` at the budget and return (and write) its table."""
    if isinstance(budget, str):
        if budget not in experiment.budgets:
            raise CnnlabError(f"experiment {experiment.name} has budgets {', '.join(experiment.budgets)}, not {budget!r}")
        budget = experiment.budgets[budget]
    out = Path(out)
    if out.is_file():
        raise CnnlabError(f"{out} is a file: give --out a folder for the experiment's run directories")
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict[str, Any]] = {}
    for arm in experiment.arms:
        run = out / arm.name
        overrides = (*budget.overrides(), f"seed={seed}", *arm.overrides)
        if arm.source is not None:
            overrides = (*overrides, f"paradigm.finetune.source={json.dumps(str((out / arm.source).resolve()))}")
        spec = (data or experiment.data) + arm.spec_modifiers
        _check_arm(run, arm, load_recipe(experiment.recipe, overrides), spec)
        summary = train_or_resume(run, model=arm.model, data=spec, recipe_name=experiment.recipe,
                                  overrides=overrides, data_dir=data_dir, device=device, console=console)
        last = _last_epoch(run)
        rows[arm.name] = {
            "arm": arm.name, "model": arm.model, "data": spec, "run": str(run), "train_loss": float(last["train_loss"]),
            "train_acc": float(last["train_acc"]), "test_top1": summary["test_top1"],
            "seconds": summary["training_seconds"], "epochs": summary["epochs"],
        }
    claims = [{"claim": c.text, "holds": bool(c.holds(rows))} for c in experiment.claims]
    table = {
        "experiment": experiment.name, "description": experiment.description, "data": data or experiment.data,
        "budget": {"steps": budget.epochs() * budget.steps_per_epoch(), "train_images": budget.train_images,
                   "batch_size": budget.batch_size, "epochs": budget.epochs(), **({"overrides": list(budget.extra)} if budget.extra else {})},
        "seed": seed, "arms": list(rows.values()), "claims": claims,
    }
    write_json(out / "table.json", table)
    (out / "table.md").write_text(table_markdown(table))
    return table


def _check_arm(run: Path, arm: Arm, recipe: Recipe, spec: str) -> None:
    """Raise one line when an arm already under `out` was trained at another budget, seed, data or model."""
    if not (run / "recipe.yaml").is_file() or not (run / "data.json").is_file():
        return
    info = RunInfo.read(run)
    if run_recipe(run).digest() != recipe.digest() or info.spec != spec or info.model != arm.model:
        raise CnnlabError(f"{run} was trained with another budget, seed, data or model than asked for: "
                          "give another --out, or delete it to train it again")


def table_markdown(table: dict[str, Any]) -> str:
    """Return the experiment's table and claims as Markdown."""
    budget = table["budget"]
    lines = [f"# {table['experiment']}: {table['description']}", "",
             f"{table['data']}, {budget['steps']} steps of {budget['batch_size']} images from {budget['train_images']} "
             f"training images ({budget['epochs']} epochs), seed {table['seed']}"
             + (f"; {', '.join(budget['overrides'])}" if budget.get("overrides") else "") + ".", "",
             "| arm | model | data | train loss (last epoch) | train top-1 | test top-1 | seconds |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for row in table["arms"]:
        lines.append(f"| {row['arm']} | {row['model']} | {row.get('data', table['data'])} | {row['train_loss']:.3f} | "
                     f"{row['train_acc']:.2%} | {row['test_top1']:.2%} | {row['seconds']:.0f} |")
    lines.append("")
    for claim in table["claims"]:
        verdict = "holds" if claim["holds"] else "does not hold at this budget"
        lines.append(f"- {claim['claim']}: **{verdict}**")
    return "\n".join(lines) + "\n"
