"""`cnnlab compare RUN RUN...`: overlaid curves and the recipe keys that differ, against the final figures.

Only runs of one data set and one task compare: their figures measure the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.report import plots
from cnnlab.report.facts import FIGURES, RunFacts, differing_keys, flatten, read_facts
from cnnlab.report.page import render_page
from cnnlab.runs.recipe import OUTPUT_KEYS
from cnnlab.runs.rundir import write_text


def check_comparable(runs: Sequence[RunFacts]) -> None:
    """Raise a one-line error when the runs are fewer than two or differ in data set or task."""
    if len(runs) < 2:
        raise CnnlabError("compare needs at least two run directories: cnnlab compare RUN RUN ...")
    first = runs[0]
    for other in runs[1:]:
        if other.info.task is not first.info.task:
            raise CnnlabError(f"{other.path} is a {other.info.task.value} run and {first.path} a {first.info.task.value} run: "
                              "compare runs of one task")
        if other.info.spec != first.info.spec or tuple(other.info.classes) != tuple(first.info.classes):
            raise CnnlabError(f"{other.path} trained on {other.info.spec} and {first.path} on {first.info.spec}: "
                              "compare runs of one data set")
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        repeated = next(n for n in names if names.count(n) > 1)
        raise CnnlabError(f"two runs are both named {repeated}: give each run once")


def show(key: str, value: Any) -> str:
    """Return a summary figure as the comparison prints it: rates in percent, losses to 4 places, seconds to 0.1."""
    if value is None:
        return "-"
    if key.endswith(("top1", "top5", "_acc", "pixel_acc")):
        return f"{100 * value:.2f} %"
    if key.endswith(("loss", "miou", "_ap", "_ap50", "_ap75")):
        return f"{value:.4f}"
    if key.endswith("seconds"):
        return f"{value:.1f}"
    return str(value)


def comparison_context(paths: Sequence[str | Path]) -> dict[str, Any]:
    """Return what the comparison page shows of the runs at `paths`."""
    runs = [read_facts(p) for p in paths]
    check_comparable(runs)
    # What a run writes besides its weights (diagnostics, report) changes none of its figures.
    keys = [k for k in differing_keys([r.recipe for r in runs]) if k not in OUTPUT_KEYS]
    if any(r.info.model != runs[0].info.model for r in runs):
        keys = ["model", *keys]
    figures = [key for key in FIGURES if any(key in r.summary for r in runs)]
    rows = []
    for run in runs:
        flat = flatten(run.recipe) | {"model": run.info.model}
        rows.append({"name": run.name, "path": str(run.path), "keys": [flat.get(k) for k in keys],
                     "figures": [show(k, run.summary.get(k)) for k in figures], "speed": run.images_per_second})
    return {
        "runs": runs, "keys": keys, "figures": figures, "rows": rows,
        "curves": plots.curves([(r.name, r.metrics) for r in runs if r.metrics]),
        "spec": runs[0].info.spec, "task": runs[0].info.task.value,
    }


def write_comparison(paths: Sequence[str | Path], out: str | Path = "compare.html") -> Path:
    """Write the comparison page of the runs and return its path."""
    context = comparison_context(paths)
    target = Path(out)
    write_text(target, render_page("compare.html.j2", title=f"cnnlab compare: {len(paths)} runs on {context['spec']}", **context))
    return target
