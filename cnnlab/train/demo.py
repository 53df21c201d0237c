"""`cnnlab train`: the small CNN (the embedded default of `make run`) on any data spec.

Data are split into train / validation (seeded, `val_fraction`) and a separate test set; the
run directory receives recipe.yaml, data.json, metrics.csv, checkpoints/{last,best}/ and
summary.json. `resume` continues a run from its last checkpoint with its own recipe.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from rich.console import Console

from cnnlab import __version__
from cnnlab.data.sources import load, split
from cnnlab.errors import CnnlabError
from cnnlab.inspect.summary import summary
from cnnlab.models.small import small_cnn
from cnnlab.train.callbacks import Checkpoints, MetricsCSV, ProgressBar
from cnnlab.train.engine import EarlyStopping, Trainer, evaluate
from cnnlab.train.recipe import load_recipe
from cnnlab.train.rundir import new_run_dir, write_json


def run_demo(
    data: str = "digits",
    out: str | None = None,
    data_dir: str | None = None,
    recipe_name: str = "digits",
    overrides: tuple[str, ...] = (),
    resume: str | None = None,
    console: Console | None = None,
) -> dict:
    """Train the small CNN on the data spec `data`, write a run directory, return its summary.json."""
    console = console or Console(width=max(Console().width, 120))  # the table needs ~110 columns
    if resume is not None:
        run = Path(resume)
        if not (run / "recipe.yaml").is_file() or not (run / "checkpoints" / "last").is_dir():
            raise CnnlabError(f"{run} is not a run directory with a last checkpoint: give the run's folder")
        recipe = load_recipe(str(run / "recipe.yaml"), overrides)
    else:
        recipe = load_recipe(recipe_name, overrides)
    splits = load(data, data_dir, seed=recipe.seed)
    train, val = split(splits.train, recipe.val_fraction, recipe.seed)
    test = splits.test
    if resume is None:
        run_name = data.replace("folder:", "folder-").replace("/", "_").strip("_")
        run = new_run_dir(out or f"runs/{run_name}-small_cnn", exist_ok_suffix=out is None)
        (run / "recipe.yaml").write_text(recipe.to_yaml())

    torch.manual_seed(recipe.seed)
    model = small_cnn(num_classes=len(train.classes), in_chans=train.images.shape[1])
    input_size = tuple(train.images.shape[1:])
    console.print(summary(model, input_size).to_table())
    trainer = Trainer(model, recipe, train, val)
    trainer.callbacks = [
        MetricsCSV(run / "metrics.csv"),
        Checkpoints(trainer, run / "checkpoints"),
        ProgressBar(recipe.epochs, console),
        *([EarlyStopping(recipe.early_stopping_patience)] if recipe.early_stopping_patience else []),
    ]
    if resume is not None:
        trainer.resume(run / "checkpoints" / "last")
    write_json(
        run / "data.json",
        {
            "spec": data,
            "classes": list(train.classes),
            "mean": list(trainer.norm.mean),
            "std": list(trainer.norm.std),
            "input_size": list(input_size),
            "train_images": len(train),
            "val_images": len(val),
            "test_images": len(test),
            "skipped_images": splits.skipped,
            "model": "small_cnn",
            "cnnlab": __version__,
        },
    )

    started = time.perf_counter()
    try:
        state = trainer.fit()
    except KeyboardInterrupt:
        trainer.checkpoint(run / "checkpoints" / "last")  # Ctrl-C keeps the work done so far
        console.print(f"interrupted: checkpoint saved; continue with cnnlab train --resume {run}")
        raise
    seconds = time.perf_counter() - started
    test_loss, test_top1, test_top5 = evaluate(model, test, trainer.norm)
    result = {
        "best_val_acc": state.best_val_acc,
        "test_top1": test_top1,
        "test_top5": test_top5,
        "test_loss": test_loss,
        "epochs": state.epoch,
        "training_seconds": round(seconds, 3),
        "test_images": len(test),
        "stop_reason": state.stop_reason,
    }
    write_json(run / "summary.json", result)
    if splits.skipped:
        console.print(f"skipped {splits.skipped} unreadable images")
    console.print(
        f"test accuracy {test_top1:.2%} on {len(test)} held-out images after {state.epoch} "
        f"epochs ({seconds:.1f} s); run directory: {run}"
    )
    return result
