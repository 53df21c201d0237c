"""`cnnlab experiment NAME`: one of the course's experiments, its arms as run directories, a table and a compare page."""

from __future__ import annotations

import argparse

from cnnlab.cli.domains import Choice
from cnnlab.cli.numeric import Integer
from cnnlab.cli.options import Spec, add, option


def register(commands: argparse._SubParsersAction) -> None:
    """Add the experiment command."""
    experiment = commands.add_parser("experiment", help="run one of the course's experiments: its arms, a table, a compare page")
    option(experiment, Spec("name", Choice(("ablation", "degradation", "shuffled-pixels", "transferability")),
                            "which experiment", extra={"metavar": "NAME"}))
    add(experiment, "data", help="data spec (default: the experiment's own)")
    add(experiment, "data_dir")
    option(experiment, Spec("--budget", Choice(("default", "full")), "default (a short CPU budget) or full (the paper's)", "default"))
    add(experiment, "steps", help="optimiser steps per arm (with --train-images)")
    option(experiment, Spec("--train-images", Integer(1, 100_000_000), "training subset per arm (with --steps)"))
    add(experiment, "seed", default=0)
    add(experiment, "out_run", help="folder of the arms' run directories (default runs/experiment-NAME)")
    add(experiment, "device")
    add(experiment, "overrides", help="recipe overrides key=value for every arm, e.g. data.input_size=32")
    experiment.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train the arms (keeping finished ones, resuming interrupted ones), print the table, write compare.html."""
    from dataclasses import replace
    from pathlib import Path

    from cnnlab.errors import CnnlabError
    from cnnlab.runs.outputs import cleaned, refuse_run_dir
    from cnnlab.workflows.experiments import EXPERIMENTS, Budget, run_experiment, table_markdown

    if args.name not in EXPERIMENTS:
        raise CnnlabError(f"no experiment {args.name!r}: choose one of {', '.join(EXPERIMENTS)}")
    experiment = EXPERIMENTS[args.name]
    budget: str | Budget = args.budget
    if (args.steps is None) != (args.train_images is None):
        raise CnnlabError("--steps and --train-images go together: a budget is steps on a stated training subset")
    if args.steps is not None:
        # The experiment's own batch size (the ablation's 32): only steps and subset change.
        budget = Budget(args.steps, args.train_images, experiment.budgets["default"].batch_size)
    if args.overrides:
        chosen = budget if isinstance(budget, Budget) else experiment.budgets[budget]
        budget = replace(chosen, extra=(*chosen.extra, *args.overrides))
    out = Path(args.out or f"runs/experiment-{experiment.name}")
    refuse_run_dir(out)
    with cleaned(out):
        table = run_experiment(experiment, out, budget, args.data, args.data_dir, args.seed, args.device)
    print(table_markdown(table), end="")
    from cnnlab.report.compare import write_comparison

    # A compare page sets runs of one data set side by side: one page per data set the arms use.
    groups: dict[str, list[str]] = {}
    for row in table["arms"]:
        groups.setdefault(row["data"], []).append(row["run"])
    pages = []
    for spec, runs in groups.items():
        if len(runs) > 1:
            name = "compare.html" if len(groups) == 1 else f"compare-{spec.replace('@', '-').replace(':', '-').replace('/', '_')}.html"
            pages.append(str(write_comparison(runs, out / name)))
    print(f"wrote {out / 'table.md'}, {out / 'table.json'}" + "".join(f", {p}" for p in pages))
    return 0
