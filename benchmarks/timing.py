"""Time to accuracy through the normal engine, timed the way the public speed records time it.

Shared by speedrun_cifar10.py and mnist_time_to_accuracy.py. The clock runs from the data set
already resident on the device as uint8 to the final (test-time augmented) test accuracy: it
includes the normalisation statistics and any data-dependent initialisation (whitening), every
training step and the final evaluation; it excludes loading from disk (reported separately),
the one-time torch.compile warm-up and any per-epoch progress evaluation (none is run). On a
GPU the span is measured with CUDA events.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import torch

from cnnlab.data.images import prepare_images
from cnnlab.data.sources import ImageSet, load
from cnnlab.models.registry import create_model
from cnnlab.runs.recipe import Precision, Recipe, load_recipe
from cnnlab.train.engine import Trainer
from cnnlab.train.evaluation import evaluate


def arguments(description: str, recipe: str, data: str, model: str) -> argparse.Namespace:
    """Return the benchmark's command line: runs, epochs, model, device, data and recipe overrides."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--models", default=model, help="the zoo model to train")
    parser.add_argument("--recipe", default=recipe)
    parser.add_argument("--data", default=data)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--limit", type=int, default=None, help="train on the first N images only (smoke tests)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed compile warm-up run")
    parser.add_argument("overrides", nargs="*", help="recipe overrides key=value")
    return parser.parse_args()


class Clock:
    """Wall time of a span: CUDA events on a GPU (no host timing of queued work), perf_counter elsewhere."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def start(self) -> None:
        """Mark the start."""
        if self.cuda:
            self.begin, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.begin.record()
        else:
            self.began = time.perf_counter()

    def seconds(self) -> float:
        """Return the seconds since start, once the device has finished."""
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            return self.begin.elapsed_time(self.end) / 1000.0
        return time.perf_counter() - self.began


def _one_run(network: torch.nn.Module, fresh: dict, recipe: Recipe, train: ImageSet, test: ImageSet,
             device: torch.device) -> tuple[float, float]:
    """Return (test top-1, seconds) of one timed run on `network`, reset to the weights `fresh`."""
    network.load_state_dict(fresh)  # in place: the compiled graph of this module stays valid
    clock = Clock(device)
    clock.start()
    trainer = Trainer(network, recipe, train, test, device=device)  # statistics: timed
    dtype = torch.bfloat16 if recipe.runtime.precision is Precision.BF16 else None
    with trainer.session():  # the whitening initialisation (a callback at fit start): timed
        for _ in range(recipe.epochs):
            trainer.train_epoch()  # no progress evaluation between epochs
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            tally = evaluate(trainer.scored_model, test, trainer.norm, trainer.task, tta=recipe.evaluation.tta,
                             batch_size=2000)
    return tally.result()["acc"], clock.seconds()


def time_to_accuracy(args: argparse.Namespace, benchmark: str, extra: Callable[[Recipe], dict] | None = None) -> dict:
    """Run the benchmark the arguments describe and return its JSON-ready result."""
    overrides = [*args.overrides, *([f"epochs={args.epochs}"] if args.epochs else [])]
    recipe = load_recipe(args.recipe, overrides)
    device = torch.device(args.device)
    if device.type != "cuda":
        recipe = load_recipe(args.recipe, [*overrides, "compile=false", "precision=fp32", "channels_last=false"])
    started = time.perf_counter()
    splits = load(args.data, args.data_dir)
    limit = slice(0, args.limit)
    size, pad = recipe.data.input_size, recipe.data.input_pad
    train = ImageSet(prepare_images(splits.train.images[limit], size, pad).to(device),
                     splits.train.labels[limit].to(device), splits.train.classes)
    test = ImageSet(prepare_images(splits.test.images, size, pad).to(device),
                    splits.test.labels.to(device), splits.test.classes)
    if device.type == "cuda":
        torch.cuda.synchronize()
    load_seconds = time.perf_counter() - started

    torch.manual_seed(0)
    network = create_model(args.models, num_classes=len(train.classes), in_chans=train.images.shape[1])
    if device.type == "cuda" and not args.no_warmup:  # compile and autotune once, untimed, on throwaway weights
        _one_run(network, network.state_dict(), load_recipe(args.recipe, [*overrides, "epochs=1"]), train, test, device)
    accuracies, seconds = [], []
    for run in range(args.runs):
        torch.manual_seed(run)
        fresh = create_model(args.models, num_classes=len(train.classes), in_chans=train.images.shape[1]).state_dict()
        # Each run its own seed: initial weights, order, augmentation and whitening sample all differ.
        top1, spent = _one_run(network, fresh, replace(recipe, seed=run), train, test, device)
        accuracies.append(top1)
        seconds.append(spent)
    return {
        "benchmark": benchmark,
        "model": args.models,
        "recipe": args.recipe,
        "overrides": overrides,
        "epochs": recipe.epochs,
        "mean_acc": statistics.mean(accuracies),
        "std_acc": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "mean_seconds": statistics.mean(seconds),
        "runs": len(accuracies),
        "accuracies": accuracies,
        "seconds": seconds,
        "load_seconds": load_seconds,
        "train_images": len(train),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        **(extra(recipe) if extra else {}),
    }


def main(description: str, benchmark: str, recipe: str, data: str, model: str) -> None:
    """Parse the command line, run, print the JSON."""
    args = arguments(description, recipe, data, model)
    print(json.dumps(time_to_accuracy(args, benchmark), indent=2))
