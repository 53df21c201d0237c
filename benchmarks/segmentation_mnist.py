"""Segmentation through the task seam on the CPU: the small U-Net against a 1x1 convolution, as JSON.

    python benchmarks/segmentation_mnist.py [--data-dir DIR] [--data mnist-seg] [--augment] [key=value ...]

Both models train on the same digit canvases (cnnlab.data.segmentation) with the same recipe
(`segmentation`) through `cnnlab train`; `wall_seconds` is the whole command (data, training,
scoring), `training_seconds` the engine's own count. Targets (the house issue): the U-Net run
under five minutes on a CPU, and its test mIoU at least 0.3 above the 1x1 baseline's.
`--augment` also trains the U-Net with flip, translate and scale moving each mask with its canvas
(AUGMENT, the detection issue), on the same recipe and epochs, and prints its mIoU beside the plain one.
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

#: The ops the augmented U-Net trains with: each moves the masks with the canvas (IGNORE where pixels come in).
AUGMENT = "augment=[{op: flip}, {op: translate, padding: 4}, {op: scale, min_scale: 0.85, max_scale: 1.15}]"


def measure(model: str, data: str, data_dir: str | None, overrides: list[str], folder: str, name: str = "") -> dict:
    """Return one run's test mIoU, pixel accuracy and seconds."""
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the process
    started = time.perf_counter()
    result = train_run(model, data, out=f"{folder}/{name or model}", data_dir=data_dir, recipe_name="segmentation",
                       overrides=tuple(overrides), console=quiet, device="cpu")
    return {"test_miou": result["test_miou"], "test_pixel_acc": result["test_pixel_acc"],
            "training_seconds": result["training_seconds"], "wall_seconds": round(time.perf_counter() - started, 3)}


def run(data: str = "mnist-seg", data_dir: str | None = None, overrides: list[str] | None = None,
        augment: bool = False) -> dict:
    """Return the JSON-ready comparison of unet_small and pointwise on `data` (and the augmented U-Net)."""
    with tempfile.TemporaryDirectory() as folder:
        unet = measure("unet_small", data, data_dir, overrides or [], folder)
        baseline = measure("pointwise", data, data_dir, overrides or [], folder)
        augmented = (measure("unet_small", data, data_dir, [*(overrides or []), AUGMENT], folder, "augmented")
                     if augment else None)
    extra = {"unet_small_augmented": {**augmented, "augment": AUGMENT.removeprefix("augment=")}} if augmented else {}
    return {**extra,
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
    parser.add_argument("--augment", action="store_true", help="also train the U-Net with flip, translate and scale")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    print(json.dumps(run(args.data, args.data_dir, args.overrides, args.augment), indent=2))


if __name__ == "__main__":
    main()
