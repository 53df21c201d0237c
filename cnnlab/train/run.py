"""`cnnlab train MODEL --data SPEC`: one training run, from data spec to run directory.

Data are split into train / validation (seeded, `data.val_fraction`) and a separate test set
(cnnlab.train.parts); the session (cnnlab.train.session) builds the network, opens the run
directory and builds the Trainer with every callback; the run directory receives recipe.yaml,
data.json, metrics.csv, checkpoints/{last,best}/ and summary.json (cnnlab.train.summary), whose
test figures come from the same function as `cnnlab eval`. `resume` continues a run from its
last checkpoint with its own recipe and model. With no model named, the small CNN of the
`make run` demo is trained (a small U-Net for segmentation data).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from cnnlab import __version__
from cnnlab.data.placement import model_input_size, read_size
from cnnlab.errors import CnnlabError
from cnnlab.runs.checkpoint import recover
from cnnlab.runs.info import RunInfo
from cnnlab.runs.recipe import load_recipe
from cnnlab.runs.rundir import mend_metrics, read_metrics
from cnnlab.train.distributed import Distributed, init_distributed, shutdown
from cnnlab.train.engine import Trainer
from cnnlab.train.parts import Parts, run_data
from cnnlab.train.session import Plan, open_session
from cnnlab.train.summary import finish_run, read_summary


def default_recipe(data: str) -> str:
    """Return the recipe a data spec trains with when none is named."""
    if data == "digits":
        return "digits"
    return "segmentation" if data.endswith("-seg") else "default"


def _plan(model: str | None, data: str, recipe_name: str | None, overrides: tuple[str, ...], resume: str | None) -> Plan:
    """Return the plan of a new run, or of a resumed one read from its own directory."""
    if resume is None:
        return Plan(model, data, load_recipe(recipe_name or default_recipe(data), overrides), None)
    run = Path(resume)
    recover(run / "checkpoints" / "last")  # a kill between the two renames of a swap left it retired
    if not (run / "recipe.yaml").is_file():
        raise CnnlabError(f"{run} is not a run directory (no recipe.yaml): give the folder cnnlab train wrote")
    if not (run / "data.json").is_file():
        raise CnnlabError(f"{run} was stopped before training began (no data.json): delete it and train again with --out {run}")
    previous = RunInfo.read(run)
    if model is not None and model != previous.model:
        raise CnnlabError(f"{run} trains {previous.model}, not {model}: leave the model out to resume")
    # Killed before (or while) writing its first checkpoint: nothing to continue, so it starts afresh.
    fresh = not (run / "checkpoints" / "last").is_dir()
    return Plan(previous.model, previous.spec, load_recipe(str(run / "recipe.yaml"), overrides), run, fresh)


def _run_info(plan: Plan, model: str, parts: Parts, trainer: Trainer, input_size: tuple[int, ...]) -> RunInfo:
    """Return the data.json of a run: everything eval and predict need to rebuild its inputs."""
    return RunInfo(
        spec=plan.spec, model=model, classes=tuple(parts.train.classes), mean=trainer.norm.mean, std=trainer.norm.std,
        image_size=tuple(read_size(parts.splits.train, plan.recipe.data.input_size)), input_size=input_size,
        resize=plan.recipe.data.input_size, pad=plan.recipe.data.input_pad, stream=parts.stream, seed=plan.recipe.seed,
        train_images=len(parts.train), val_images=len(parts.val) if parts.val is not None else 0,
        test_images=len(parts.test), skipped_images=parts.splits.skipped, cnnlab=__version__, task=trainer.task.name,
    )


def train_run(
    model: str | None = None,
    data: str = "digits",
    out: str | None = None,
    data_dir: str | None = None,
    recipe_name: str | None = None,
    overrides: tuple[str, ...] = (),
    resume: str | None = None,
    console: Console | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Train `model` on the data spec `data`, write a run directory, return its summary.json."""
    dist, target = init_distributed(device)
    try:
        return _train_run(_plan(model, data, recipe_name, overrides, resume), out, data_dir, console, dist, target)
    finally:
        shutdown(dist)


def _train_run(plan: Plan, out: str | None, data_dir: str | None, console: Console | None,
               dist: Distributed, target: torch.device) -> dict[str, Any]:
    """Train on this process's device (one rank of several under torchrun); rank 0 writes the run."""
    if not dist.is_main:
        console = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - one console per worker process
    console = console or Console(width=max(Console().width, 120))  # the table needs ~110 columns
    parts = run_data(plan.spec, data_dir, plan.recipe, dist, target, plan.resume)
    session = open_session(plan, parts, out, dist, target, console)
    model, run, trainer = session.model, session.run, session.trainer
    if not plan.fresh:
        trainer.resume(run / "checkpoints" / "last")
    if dist.is_main:
        # metrics.csv describes exactly the epochs of the weights training continues from.
        mend_metrics(run / "metrics.csv", trainer.state.epoch, trainer.state.last_row)
        if trainer.state.epoch and not trainer.state.seconds:
            trainer.state.seconds = _earlier_seconds(run, trainer.state.epoch)
    if not dist.is_main:
        return {"model": model, "epochs": trainer.fit().epoch, "rank": dist.rank}
    _run_info(plan, model, parts, trainer, model_input_size(parts.train)).write(run)
    try:
        trainer.fit()
    except KeyboardInterrupt:
        # Not a checkpoint of half an epoch: resume continues from the last epoch boundary, exactly.
        console.print(f"interrupted: the last checkpoint is the end of epoch {_saved_epoch(run)}; "
                      f"continue with cnnlab train --resume {run}")
        raise
    return finish_run(run, parts, trainer, model, target, console)


def _earlier_seconds(run: Path, epoch: int) -> float:
    """Return the time the sessions before a resume spent on `epoch` epochs, for a checkpoint that kept none.

    Checkpoints of the first release hold no `seconds` counter; without this a resumed run's
    training_seconds would count its last session only. summary.json's figure (training and
    validation) when it describes these epochs, else metrics.csv's (training only: a lower bound).
    """
    try:
        summary = read_summary(run)
    except (OSError, ValueError, CnnlabError):
        summary = None  # no (readable) summary: the per-epoch rows are the record left
    seconds = summary.get("training_seconds") if isinstance(summary, dict) else None
    if isinstance(seconds, int | float) and summary.get("epochs") == epoch:
        return float(seconds)
    try:
        rows = read_metrics(run / "metrics.csv")
    except CnnlabError:
        return 0.0  # damaged rows: resuming matters more than the clock
    return sum(row.get("seconds", 0.0) for row in rows if row.get("epoch", 0) <= epoch)


def _saved_epoch(run: Path) -> int:
    """Return the epoch of the run's last checkpoint (0 when it has none)."""
    from cnnlab.runs.checkpoint import load_checkpoint

    try:
        return int(load_checkpoint(run / "checkpoints" / "last")[1].get("epoch", 0))
    except CnnlabError:
        return 0
