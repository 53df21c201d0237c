"""One ResNet-20 epoch on CIFAR-10 on the CPU through `cnnlab train`, printed as JSON.

    python benchmarks/resnet20_cifar_epoch.py [--data-dir DIR] [--seeds 0]

Each seed is `cnnlab train resnet20 --data cifar10 --recipe resnet-cifar epochs=1` (the paper's
flip and 4-pixel crop) in a temporary run directory. `epoch_seconds` is the epoch's `seconds`
column of metrics.csv (its optimiser steps, validation excluded); `training_seconds` is the
engine's own count from summary.json (the epoch and its validation). The CPU's model name is
part of the JSON: machines here differ by 3x or more.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from rich.console import Console

from cnnlab.train.run import train_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_name  # noqa: E402


def main() -> None:
    """Print the epoch's seconds and test accuracy per seed, and their mean, as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")], default=[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives for the process
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            out = f"{folder}/seed{seed}"
            result = train_run("resnet20", "cifar10", out=out, data_dir=args.data_dir, recipe_name="resnet-cifar",
                               overrides=("epochs=1", *args.overrides, f"seed={seed}"), console=quiet, device="cpu")
            with open(f"{out}/metrics.csv") as handle:
                epoch_seconds = float(next(csv.DictReader(handle))["seconds"])
            runs.append({"seed": seed, "epoch_seconds": epoch_seconds, "training_seconds": result["training_seconds"],
                         "test_top1": result["test_top1"]})
    print(json.dumps({
        "benchmark": "resnet20-cifar10-cpu-epoch",
        "mean_epoch_seconds": statistics.mean(r["epoch_seconds"] for r in runs),
        "mean_test_top1": statistics.mean(r["test_top1"] for r in runs),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
