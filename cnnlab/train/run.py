"""`cnnlab train MODEL --data SPEC`: one training run, from data spec to run directory.

Data are split into train / validation (seeded, `val_fraction`) and a separate test set; the
run directory receives recipe.yaml, data.json, metrics.csv, checkpoints/{last,best}/ and
summary.json. `resume` continues a run from its last checkpoint with its own recipe and model.
With no model named, the small CNN of the `make run` demo is trained.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from cnnlab import __version__
from cnnlab.data.images import prepare_images
from cnnlab.data.loader import StreamedImages
from cnnlab.data.sources import ImageSet, load, split
from cnnlab.errors import CnnlabError
from cnnlab.inspect.summary import summary
from cnnlab.train.callbacks import Checkpoints, MetricsCSV, ProgressBar, TensorBoard
from cnnlab.train.distributed import Distributed, init_distributed, shutdown
from cnnlab.train.engine import EarlyStopping, Trainer, evaluate
from cnnlab.train.recipe import Recipe, load_recipe
from cnnlab.train.rundir import new_run_dir, write_json

DEFAULT_MODEL = "small_cnn"


def build_model(name: str, num_classes: int, in_chans: int) -> nn.Module:
    """Return a freshly initialised model to train: `small_cnn` or any `create_model` name."""
    if name == DEFAULT_MODEL:
        from cnnlab.models.small import small_cnn

        return small_cnn(num_classes=num_classes, in_chans=in_chans)
    from cnnlab.models.registry import create_model

    return create_model(name, num_classes=num_classes, in_chans=in_chans)


RESIDENT_BUDGET_CPU = 4 << 30  # bytes of uint8 images kept in memory before streaming instead


def _resident_budget(device: torch.device) -> int:
    """Return how many bytes of uint8 images may live on `device` (a quarter of a GPU's free memory)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // 4
    return RESIDENT_BUDGET_CPU


def _too_big(data: ImageSet | StreamedImages, size: int | None, pad: int, device: torch.device) -> bool:
    """Return whether `data`, resized and padded, exceeds what may stay resident on `device`."""
    if isinstance(data, StreamedImages):
        return True
    channels, height, _ = data.images.shape[1:]
    side = (size or height) + 2 * pad
    return len(data) * channels * side * side > _resident_budget(device)


def place(data: ImageSet | StreamedImages, size: int | None, pad: int, stream: bool, workers: int = 4) -> ImageSet | StreamedImages:
    """Return `data` resized and padded once and held whole, or set up to be streamed by workers."""
    if isinstance(data, StreamedImages):  # files on disk: always streamed
        return replace(data, size=size, pad=pad, workers=workers, unreadable=set())
    if stream:
        return StreamedImages(data.images, data.labels, data.classes, data.images.shape[1], size, pad, workers)
    return ImageSet(prepare_images(data.images, size, pad), data.labels, data.classes, data.skipped)


def _input_size(data: ImageSet | StreamedImages) -> tuple[int, ...]:
    """Return (C, H, W) of the images the model will see."""
    if isinstance(data, ImageSet):
        return tuple(data.images.shape[1:])
    if data.size is not None:
        height = width = data.size
    elif isinstance(data.source, torch.Tensor):
        height, width = data.source.shape[2:]
    else:
        raise CnnlabError("streamed image files need one size: set input_size=N (e.g. input_size=224)")
    return (data.channels, height + 2 * data.pad, width + 2 * data.pad)


def _read_size(data: ImageSet | StreamedImages, recipe: Recipe) -> tuple[int, ...]:
    """Return (C, H, W) of the images as read (files of mixed sizes: as resized), before padding."""
    if isinstance(data, ImageSet):
        return tuple(data.images.shape[1:])
    if isinstance(data.source, torch.Tensor):
        return tuple(data.source.shape[1:])
    return (data.channels, recipe.input_size, recipe.input_size)


def _check_input(name: str, input_size: tuple[int, ...]) -> None:
    """Raise a one-line error when the images are smaller than the model accepts."""
    if name == DEFAULT_MODEL or "/" in name:
        return
    from cnnlab.models.registry import model_info

    info = model_info(name)
    smallest = min(input_size[1:])
    if smallest < info.min_train_size:
        raise CnnlabError(
            f"{name} needs images of at least {info.min_train_size}x{info.min_train_size} to train, "
            f"these are {input_size[1]}x{input_size[2]}: add input_size={info.min_train_size} (or input_pad=N)"
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
) -> dict:
    """Train `model` on the data spec `data`, write a run directory, return its summary.json."""
    dist, target = init_distributed(device)
    try:
        return _train_run(model, data, out, data_dir, recipe_name, overrides, resume, console, dist, target)
    finally:
        shutdown(dist)


def _train_run(
    model: str | None,
    data: str,
    out: str | None,
    data_dir: str | None,
    recipe_name: str | None,
    overrides: tuple[str, ...],
    resume: str | None,
    console: Console | None,
    dist: Distributed,
    target: torch.device,
) -> dict:
    """Train on this process's device (one rank of several under torchrun); rank 0 writes the run."""
    if not dist.is_main:
        console = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - one console per worker process
    console = console or Console(width=max(Console().width, 120))  # the table needs ~110 columns
    if resume is not None:
        run = Path(resume)
        if not (run / "recipe.yaml").is_file() or not (run / "checkpoints" / "last").is_dir():
            raise CnnlabError(f"{run} is not a run directory with a last checkpoint: give the run's folder")
        recipe = load_recipe(str(run / "recipe.yaml"), overrides)
        previous = json.loads((run / "data.json").read_text())
        if model is not None and model != previous["model"]:
            raise CnnlabError(f"{run} trains {previous['model']}, not {model}: leave the model out to resume")
        model, data = previous["model"], previous["spec"]
    else:
        model = model or DEFAULT_MODEL
        recipe = load_recipe(recipe_name or ("digits" if data == "digits" else "default"), overrides)
    splits = load(data, data_dir, seed=recipe.seed, stream=bool(recipe.stream))
    train, val = split(splits.train, recipe.val_fraction, recipe.seed)
    stream = recipe.stream if recipe.stream is not None else _too_big(train, recipe.input_size, recipe.input_pad, target)
    stream = bool(dist.broadcast(stream))  # rank 0 decides: every rank must read its data the same way
    train, val, test = (place(part, recipe.input_size, recipe.input_pad, stream, recipe.workers)
                        for part in (train, val, splits.test))
    input_size = _input_size(train)
    _check_input(model, input_size)
    if resume is None:
        run_name = f"{data}-{model}".replace("folder:", "folder-").replace("/", "_").strip("_")
        if dist.is_main:
            run = new_run_dir(out or f"runs/{run_name}", exist_ok_suffix=out is None)
            (run / "recipe.yaml").write_text(recipe.to_yaml())
        run = Path(dist.broadcast(str(run) if dist.is_main else None))

    torch.manual_seed(recipe.seed)
    network = build_model(model, len(train.classes), input_size[0])
    console.print(summary(network, input_size).to_table())
    trainer = Trainer(network, recipe, train, val, device=target, dist=dist)
    writers = [
        MetricsCSV(run / "metrics.csv"),
        Checkpoints(trainer, run / "checkpoints"),
        ProgressBar(recipe.epochs, trainer.steps_per_epoch, console),
        *([TensorBoard(run)] if TensorBoard.available() else []),
    ] if dist.is_main else []  # every rank computes the same metrics; one writes them
    trainer.callbacks = [
        *writers,
        *([EarlyStopping(recipe.early_stopping_patience)] if recipe.early_stopping_patience else []),
    ]
    if resume is not None:
        trainer.resume(run / "checkpoints" / "last")
    if not dist.is_main:
        state = trainer.fit()
        return {"model": model, "epochs": state.epoch, "rank": dist.rank}
    write_json(
        run / "data.json",
        {
            "spec": data,
            "classes": list(train.classes),
            "mean": list(trainer.norm.mean),
            "std": list(trainer.norm.std),
            "image_size": list(_read_size(splits.train, recipe)),  # before padding (and resizing, if images share a size)
            "resize": recipe.input_size,
            "pad": recipe.input_pad,
            "stream": stream,
            "seed": recipe.seed,  # of the held-out test part, for specs without an official one
            "input_size": list(input_size),  # what the model sees
            "train_images": len(train),
            "val_images": len(val),
            "test_images": len(test),
            "skipped_images": splits.skipped,
            "model": model,
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
    test_loss, test_top1, test_top5 = evaluate(trainer.scored_model, test, trainer.norm, tta=recipe.tta)
    skipped = splits.skipped + sum(part.skipped for part in (train, val, test) if isinstance(part, StreamedImages))
    result = {
        "model": model,
        "best_val_acc": state.best_val_acc,
        "test_top1": test_top1,
        "test_top5": test_top5,
        "test_loss": test_loss,
        "epochs": state.epoch,
        "training_seconds": round(seconds, 3),
        "test_images": len(test),
        "stop_reason": state.stop_reason,
        "skipped_images": skipped,
    }
    write_json(run / "summary.json", result)
    if skipped:
        console.print(f"skipped {skipped} unreadable images")
    console.print(
        f"test accuracy {test_top1:.2%} on {len(test)} held-out images after {state.epoch} "
        f"epochs ({seconds:.1f} s); run directory: {run}"
    )
    return result
