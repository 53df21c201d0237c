"""The embedded default job of `make run`: a small CNN on scikit-learn's 8x8 digits, on the CPU."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cnnlab import __version__
from cnnlab.data.sources import load
from cnnlab.inspect.summary import summary
from cnnlab.models.small import small_cnn
from cnnlab.train.engine import EpochResult, FitConfig, Normalisation, fit
from cnnlab.train.rundir import append_metrics, new_run_dir, save_checkpoint, write_json


def run_demo(
    data: str = "digits",
    out: str | None = None,
    data_dir: str | None = None,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    console: Console | None = None,
) -> dict:
    """Train the small CNN on the data spec `data`, write a run directory, return its summary.json."""
    console = console or Console(width=max(Console().width, 120))  # the table needs ~110 columns
    config = FitConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    splits = load(data, data_dir, seed=seed)
    train, test = splits.train, splits.test
    run_name = data.replace("folder:", "folder-").replace("/", "_").strip("_")
    run = new_run_dir(out or f"runs/{run_name}-small_cnn", exist_ok_suffix=out is None)

    torch.manual_seed(seed)
    model = small_cnn(num_classes=len(train.classes), in_chans=train.images.shape[1])
    input_size = tuple(train.images.shape[1:])
    console.print(summary(model, input_size).to_table())

    norm = Normalisation.of(train.images)
    write_json(run / "recipe.json", {"model": "small_cnn", "data": data, **asdict(config)})
    write_json(
        run / "data.json",
        {
            "spec": data,
            "classes": list(train.classes),
            "mean": list(norm.mean),
            "std": list(norm.std),
            "input_size": list(input_size),
            "train_images": len(train),
            "test_images": len(test),
            "split_seed": seed,
            "skipped_images": splits.skipped,
        },
    )

    started = time.perf_counter()
    with Progress(
        TextColumn("epoch"), MofNCompleteColumn(), BarColumn(),
        TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console,
    ) as progress:
        task = progress.add_task("train", total=epochs, status="")

        def on_epoch(result: EpochResult) -> None:
            append_metrics(run / "metrics.csv", result)
            progress.update(
                task,
                advance=1,
                status=f"loss {result.train_loss:.3f}  test acc {result.test_acc:.2%}  "
                f"{result.images_per_second:,.0f} img/s",
            )

        history = fit(model, train, test, config, on_epoch=on_epoch)
    seconds = time.perf_counter() - started

    final = history[-1]
    save_checkpoint(
        run / "checkpoints" / "last",
        model,
        {"epoch": final.epoch, "cnnlab": __version__, "model": "small_cnn"},
    )
    result = {
        "test_top1": final.test_acc,
        "test_loss": final.test_loss,
        "epochs": final.epoch,
        "training_seconds": round(seconds, 3),
        "test_images": len(test),
    }
    write_json(run / "summary.json", result)
    if splits.skipped:
        console.print(f"skipped {splits.skipped} unreadable images")
    console.print(
        f"test accuracy {final.test_acc:.2%} on {len(test)} held-out images after {final.epoch} "
        f"epochs ({seconds:.1f} s); run directory: {Path(run)}"
    )
    return result
