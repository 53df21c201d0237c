"""Segmentation through the task seam on the CPU: the small U-Net against a 1x1 convolution, as JSON.

    python benchmarks/segmentation_mnist.py [--data-dir DIR] [--data mnist-seg] [key=value ...]

Both models train on the same digit canvases (cnnlab.data.segmentation) with the same recipe
(`segmentation`) through `cnnlab train`; `wall_seconds` is the whole command (data, training,
scoring), `training_seconds` the engine's own count. Targets (the house issue): the U-Net run
under five minutes on a CPU, and its test mIoU at least 0.3 above the 1x1 baseline's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

from cnnlab.train.run import train_run

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_name  # noqa: E402


def measure(model: str, data: str, data_dir: str | None, overrides: list[str], folder: str) -> dict:
    """Return one run's test mIoU, pixel accuracy and seconds."""
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the process
    started = time.perf_counter()
    result = train_run(model, data, out=f"{folder}/{model}", data_dir=data_dir, recipe_name="segmentation",
                       overrides=tuple(overrides), console=quiet, device="cpu")
    return {"test_miou": result["test_miou"], "test_pixel_acc": result["test_pixel_acc"],
            "training_seconds": result["training_seconds"], "wall_seconds": round(time.perf_counter() - started, 3)}


def run(data: str = "mnist-seg", data_dir: str | None = None, overrides: list[str] | None = None) -> dict:
    """Return the JSON-ready comparison of unet_small and pointwise on `data`."""
    with tempfile.TemporaryDirectory() as folder:
        unet = measure("unet_small", data, data_dir, overrides or [], folder)
        baseline = measure("pointwise", data, data_dir, overrides or [], folder)
    return {
        "benchmark": "segmentation-cpu", "data": data, "recipe": "segmentation", "overrides": overrides or [],
        "unet_small": unet, "pointwise": baseline, "miou_gap": unet["test_miou"] - baseline["test_miou"],
        "targets": {"unet_wall_seconds": 300, "miou_gap": 0.3},
        "cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
    }


def main() -> None:
    """Parse the command line, run both models, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist-seg")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    print(json.dumps(run(args.data, args.data_dir, args.overrides), indent=2))


if __name__ == "__main__":
    main()
