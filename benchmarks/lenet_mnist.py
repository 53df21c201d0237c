"""LeNet-5 on MNIST through `cnnlab train` (the training issue's CPU target), printed as JSON.

    python benchmarks/lenet_mnist.py [--seeds 0,1,2] [--data-dir DIR] [key=value ...]

Each seed is one full `cnnlab train lenet5 --data mnist --recipe lenet-mnist` run in a
temporary run directory; `training_seconds` is the engine's own count (all epochs, including
the per-epoch validation, excluding data loading and the final test pass).
"""

from __future__ import annotations

import argparse
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
    """Print mean/std test accuracy and training seconds over the seeds as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")], default=[0, 1, 2],
                        help="comma-separated, e.g. 0,1,2")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--recipe", default="lenet-mnist")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives for the process
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            result = train_run(
                "lenet5", "mnist", out=f"{folder}/seed{seed}", data_dir=args.data_dir, recipe_name=args.recipe,
                overrides=(*args.overrides, f"seed={seed}"), console=quiet, device="cpu",
            )
            runs.append({"seed": seed, "test_top1": result["test_top1"], "training_seconds": result["training_seconds"]})
    accuracies = [r["test_top1"] for r in runs]
    seconds = [r["training_seconds"] for r in runs]
    print(json.dumps({
        "benchmark": "lenet5-mnist-cpu",
        "recipe": args.recipe,
        "mean_acc": statistics.mean(accuracies),
        "std_acc": statistics.stdev(accuracies) if len(runs) > 1 else 0.0,
        "max_seconds": max(seconds),
        "mean_seconds": statistics.mean(seconds),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
