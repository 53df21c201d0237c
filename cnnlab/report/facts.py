"""What a run directory says about itself without its weights: recipe, data.json, summary, curves, health.

`cnnlab report` and `cnnlab compare` both start here; neither re-trains or re-reads a data set for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.runs.info import RunInfo
from cnnlab.runs.load import run_recipe
from cnnlab.runs.rundir import read_metrics
from cnnlab.train.diagnostics import read_diagnostics
from cnnlab.train.summary import read_summary

#: summary.json figures a report headlines and a comparison tabulates, in this order.
FIGURES = ("test_top1", "test_top5", "test_pixel_acc", "test_miou", "test_ap", "test_ap50", "test_ap75", "test_loss",
           "best_val_acc", "best_val_ap", "best_epoch", "epochs", "training_seconds")


@dataclass(frozen=True)
class RunFacts:
    """A run as its files describe it."""

    path: Path
    info: RunInfo
    recipe: dict[str, Any]  # the resolved recipe, as plain data
    summary: dict[str, Any]  # summary.json ({} while the run has not finished)
    metrics: list[dict[str, float]]  # metrics.csv, one row per epoch
    diagnostics: list[dict[str, Any]]  # diagnostics.jsonl, one line per epoch ([] without diagnostics=true)

    @property
    def name(self) -> str:
        """Return the run directory's own name."""
        return self.path.name

    @property
    def images_per_second(self) -> float | None:
        """Return the mean training images/s over the recorded epochs (None without any)."""
        speeds = [row["images_per_second"] for row in self.metrics if "images_per_second" in row]
        return sum(speeds) / len(speeds) if speeds else None

    def figures(self) -> dict[str, Any]:
        """Return the summary's headline figures that this run has, in FIGURES order."""
        return {key: self.summary[key] for key in FIGURES if key in self.summary}


def read_facts(path: str | Path) -> RunFacts:
    """Return the facts of the run at `path`; one-line errors for what is missing or damaged."""
    run = Path(path)
    if not run.is_dir():
        raise CnnlabError(f"{run} is not a directory: give a run directory written by cnnlab train")
    info = RunInfo.read(run)
    recipe = run_recipe(run).to_dict()
    summary = read_summary(run)
    if summary is None:
        summary = {}  # not finished yet
    return RunFacts(run, info, recipe, summary, read_metrics(run / "metrics.csv"), read_diagnostics(run))


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return a nested mapping as dotted keys (`optim.lr`); lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def differing_keys(recipes: list[dict[str, Any]]) -> list[str]:
    """Return the dotted recipe keys whose values are not the same in every recipe, in recipe order."""
    flats = [flatten(r) for r in recipes]
    keys = list(dict.fromkeys(k for flat in flats for k in flat))
    return [k for k in keys if len({json.dumps(flat.get(k), sort_keys=True, default=str) for flat in flats}) > 1]
