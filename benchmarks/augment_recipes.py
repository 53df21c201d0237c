"""The augmentation study: CIFAR ResNet-20 under three augment lists, several seeds each, printed as JSON.

    python benchmarks/augment_recipes.py --data-dir ../shared/data [--seeds 0,1,2] [--out DIR] [key=value ...]

The arms are `none` (augment=[]), `flip+crop` (flip and a 4-pixel crop) and `flip+crop+ra+cutout`
(the `cifar-augment` recipe's own list: flip, crop, one RandAugment op at magnitude 9, Cutout
8). Every run is `cnnlab train resnet20 --data cifar10 --recipe cifar-augment` with that list,
on the recipe's seeded training subset, scored on the full test set. Each run's wall time is
measured around the whole command (data loading included); the CPU's model name is in the JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

from cnnlab.runs.recipe import load_recipe
from cnnlab.train.run import train_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_name  # noqa: E402

ARMS = {
    "none": "augment=[]",
    "flip+crop": "augment=[{op: flip}, {op: translate, padding: 4}]",
    "flip+crop+ra+cutout": None,  # the recipe's own list
}


def main() -> None:
    """Train every arm with every seed and print one JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--data", default="cifar10")
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--out", default=None, help="keep the run directories here (default: a temporary folder)")
    parser.add_argument("overrides", nargs="*", help="recipe overrides for every run, e.g. epochs=2")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="augment-study-"))
    quiet = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the script
    recipe = load_recipe("cifar-augment", args.overrides)
    arms = {}
    for arm in args.arms.split(","):
        runs = []
        for seed in seeds:
            overrides = [*args.overrides, f"seed={seed}", *([ARMS[arm]] if ARMS[arm] else [])]
            started = time.perf_counter()
            summary = train_run(model=args.model, data=args.data, data_dir=args.data_dir, recipe_name="cifar-augment",
                                out=str(base / f"{arm}-seed{seed}"), overrides=tuple(overrides), console=quiet)
            runs.append({"seed": seed, "test_top1": summary["test_top1"], "wall_seconds": round(time.perf_counter() - started, 1)})
        accuracies = [r["test_top1"] for r in runs]
        arms[arm] = {"mean_top1": statistics.mean(accuracies),
                     "std_top1": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
                     "max_wall_seconds": max(r["wall_seconds"] for r in runs), "runs": runs}
    print(json.dumps({
        "cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__, "model": args.model,
        "data": args.data, "train_images": recipe.data.train_images, "epochs": recipe.epochs,
        "batch_size": recipe.batch_size, "overrides": args.overrides, "arms": arms, "runs_in": str(base),
    }, indent=1))


if __name__ == "__main__":
    main()
