"""One LeNet-5 epoch on MNIST on the CPU: `cnnlab train` against a plain hand-written loop.

    python benchmarks/cpu_epoch.py [--repeats 5] [--data-dir DIR]

Both train the same 61,706-parameter LeNet-5 on the same 54,000 padded 32x32 MNIST images
(the lenet-mnist recipe's split) with batch 128, SGD + Nesterov momentum, weight decay on
weights only, label smoothing 0.1, a per-step one-cycle rate, and the loss and accuracy of every
batch kept; augmentation is off in both, so they do the same work. cnnlab's time is the epoch's `seconds` column of metrics.csv (its optimiser steps and
the closing sync; validation excluded); the plain loop is timed over the same span. Runs are
interleaved (cnnlab, plain, cnnlab, plain, ...) and the medians compared: target ratio <= 1.05.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from torch import nn

from cnnlab.data.images import prepare_images
from cnnlab.data.sources import load, split
from cnnlab.runs.recipe import load_recipe
from cnnlab.train.run import train_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_name  # noqa: E402

OVERRIDES = ("epochs=1", "augment.crop_padding=0")


class PlainLeNet5(nn.Module):
    """LeNet-5 as a textbook writes it: 6@5x5, max-pool, 16@5x5, max-pool, 120, 84, 10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, 10) for images (B, 1, 32, 32)."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc3(F.relu(self.fc2(x)))


def plain_epoch(images: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
    """Return the seconds of one hand-written training epoch over uint8 images (N, 1, 32, 32)."""
    recipe = load_recipe("lenet-mnist", list(OVERRIDES))
    torch.manual_seed(seed)
    model = PlainLeNet5()
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": recipe.optim.weight_decay}, {"params": rest}],
                                lr=recipe.optim.lr, momentum=recipe.optim.momentum, nesterov=True)
    steps = -(-len(labels) // recipe.batch_size)

    def one_cycle(step: int) -> float:
        t = step / steps
        return 0.04 + 0.96 * t / 0.3 if t < 0.3 else max(1.0 - (t - 0.3) / 0.7, 0.0)

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle)
    x_all = images.float() / 255.0
    mean, std = x_all.mean().item(), x_all.std().item()
    started = time.perf_counter()
    order = torch.randperm(len(labels))
    total, correct = torch.zeros(()), torch.zeros((), dtype=torch.long)
    for start in range(0, len(labels), recipe.batch_size):
        index = order[start : start + recipe.batch_size]
        x = (images[index].float() / 255.0 - mean) / std
        y = labels[index]
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=recipe.loss.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.detach() * len(index)
        correct += (logits.argmax(1) == y).sum()
    total.item(), correct.item()
    return time.perf_counter() - started


def cnnlab_epoch(data_dir: str | None, seed: int, folder: str) -> float:
    """Return the `seconds` of one `cnnlab train lenet5 --recipe lenet-mnist` epoch."""
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the process
    out = f"{folder}/run{seed}"
    train_run("lenet5", "mnist", out=out, data_dir=data_dir, recipe_name="lenet-mnist",
              overrides=(*OVERRIDES, f"seed={seed}"), console=quiet, device="cpu")
    with open(f"{out}/metrics.csv") as handle:
        return float(next(csv.DictReader(handle))["seconds"])


def main() -> None:
    """Print both medians, their ratio and every measurement as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    recipe = load_recipe("lenet-mnist", list(OVERRIDES))
    train, _ = split(load("mnist", args.data_dir).train, recipe.data.val_fraction, recipe.seed)
    images = prepare_images(train.images, recipe.data.input_size, recipe.data.input_pad)
    ours, plain = [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            ours.append(cnnlab_epoch(args.data_dir, repeat, folder))
            plain.append(plain_epoch(images, train.labels, repeat))
    print(json.dumps({
        "benchmark": "cpu-epoch-lenet5-mnist",
        "images": len(train),
        "cnnlab_median_s": statistics.median(ours),
        "plain_median_s": statistics.median(plain),
        "ratio": statistics.median(ours) / statistics.median(plain),
        "target_ratio": 1.05,
        "cnnlab_s": ours,
        "plain_s": plain,
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }, indent=2))


if __name__ == "__main__":
    main()
