"""The course's claim "YOLO is faster and less accurate", measured: yolo_v1, centernet and Faster R-CNN at equal epochs, as JSON.

    python benchmarks/detection_mnist.py [--data mnist-det] [--data-dir DIR] [--epochs 6] [--backbone-epochs 2]
                                         [--train-images N] [--backbone-images N] [--device cpu]

All three train on the same digit scenes with the same recipe (`detection`: AdamW 2e-3, cosine,
batch 64) for the same number of epochs through `cnnlab train`: `yolo_v1` (S = 8, B = 2),
`centernet` (anchor-free, stride 4), and torchvision's `fasterrcnn_mobilenet_v3_large_fpn` at the
canvases' size with 300 proposals, whose MobileNet v3 backbone starts from a cnnlab MNIST run of
`mobilenet_v3_large` (`model.backbone=RUN`, trained here first for --backbone-epochs). Each is
scored on the test split (COCO's AP50 and AP at 0.5:0.95) and timed at inference: images per
second through the model and the task's decoding (threshold, per-class NMS, top 100), in eval
mode, batches of 64, after one warm-up batch, median of three passes. "Faster" is judged by
that speed and "less accurate" by AP at equal epochs; the verdict is printed whichever way it
falls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

from cnnlab.runs.load import load_run
from cnnlab.train.run import train_run
from cnnlab.train.tasks.detection import detections

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_name  # noqa: E402

DETECTORS = ("yolo_v1", "centernet", "tv/fasterrcnn_mobilenet_v3_large_fpn")
BACKBONE = "mobilenet_v3_large"  # the backbone of torchvision's fasterrcnn_mobilenet_v3_large_fpn


@torch.no_grad()
def images_per_second(run_path: Path, images: torch.Tensor, batch: int = 64, passes: int = 3) -> float:
    """Return the median images/s of a run's model plus decoding over `images` (uint8, N, C, H, W), in eval mode."""
    run = load_run(run_path)
    model = run.model.eval()
    x = run.normalisation(images[:batch])
    detections(model(x))  # warm-up: allocations and the first call's one-time work
    speeds = []
    for _ in range(passes):
        started = time.perf_counter()
        for start in range(0, len(images), batch):
            detections(model(run.normalisation(images[start : start + batch])))
        speeds.append(len(images) / (time.perf_counter() - started))
    return statistics.median(speeds)


def run(data: str = "mnist-det", data_dir: str | None = None, epochs: int = 6, backbone_epochs: int = 2,
        train_images: int | None = None, timed_images: int = 512, device: str = "cpu",
        backbone_images: int | None = None) -> dict:
    """Return the JSON-ready comparison of the three detectors on `data`."""
    quiet = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the process
    common = [f"epochs={epochs}", *([f"data.train_images={train_images}"] if train_images else [])]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        source = train_run(BACKBONE, "mnist", out=f"{folder}/backbone", data_dir=data_dir, console=quiet, device=device,
                           overrides=(f"epochs={backbone_epochs}", "optim.name=adamw", "optim.nesterov=false",
                                      "optim.lr=2e-3", "optim.weight_decay=0.05", "batch_size=128", "input_size=32",
                                      *([f"data.train_images={backbone_images}"] if backbone_images else [])))
        # The backbone sees all of MNIST unless --backbone-images says otherwise (not --train-images):
        # mobilenet_v3_large's BatchNorm momentum is 0.01, and a few dozen steps leave its running
        # statistics (its eval mode) at chance.
        backbone = {"model": BACKBONE, "data": "mnist", "epochs": backbone_epochs, "images": backbone_images or "all",
                    "test_top1": source["test_top1"],
                    "wall_seconds": round(time.perf_counter() - started, 1)}
        for model in DETECTORS:
            extra = [f"model.backbone={folder}/backbone"] if model.startswith("tv/") else []
            started = time.perf_counter()
            name = model.replace("/", "_")
            summary = train_run(model, data, out=f"{folder}/{name}", data_dir=data_dir, recipe_name="detection",
                                overrides=(*common, *extra), console=quiet, device=device)
            test = load_run(f"{folder}/{name}").test_split(data_dir)
            results[model] = {
                "test_ap50": summary["test_ap50"], "test_ap": summary["test_ap"], "test_ap75": summary["test_ap75"],
                "training_seconds": summary["training_seconds"], "wall_seconds": round(time.perf_counter() - started, 1),
                "inference_images_per_second": round(images_per_second(Path(f"{folder}/{name}"),
                                                                       test.images[:timed_images]), 1),
                "backbone": "cnnlab run of mobilenet_v3_large on MNIST" if extra else "random",
            }
    yolo, rcnn = results["yolo_v1"], results["tv/fasterrcnn_mobilenet_v3_large_fpn"]
    faster = yolo["inference_images_per_second"] > rcnn["inference_images_per_second"]
    less_accurate = yolo["test_ap"] < rcnn["test_ap"]
    ratio = yolo["inference_images_per_second"] / max(rcnn["inference_images_per_second"], 1e-9)
    verdict = (f"YOLO v1 is {'faster' if faster else 'slower'} than Faster R-CNN ({ratio:.2f}x its images/s) and "
               f"{'less' if less_accurate else 'more'} accurate (AP {yolo['test_ap']:.3f} against {rcnn['test_ap']:.3f}, "
               f"AP50 {yolo['test_ap50']:.3f} against {rcnn['test_ap50']:.3f}) after {epochs} epochs each: the course's "
               f"claim {'holds' if faster and less_accurate else 'does not hold'} here")
    return {
        "benchmark": "detection-mnist", "data": data, "recipe": "detection", "epochs": epochs,
        "train_images": train_images, "timed_images": timed_images, "backbone_run": backbone, **results,
        "yolo_faster": faster, "yolo_less_accurate": less_accurate, "verdict": verdict,
        "cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__, "device": device,
    }


def main() -> None:
    """Parse the command line, train the three detectors, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist-det")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--backbone-epochs", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=None)
    parser.add_argument("--timed-images", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone-images", type=int, default=None, help="MNIST images for the backbone (default all)")
    args = parser.parse_args()
    print(json.dumps(run(args.data, args.data_dir, args.epochs, args.backbone_epochs, args.train_images,
                         args.timed_images, args.device, args.backbone_images), indent=2))


if __name__ == "__main__":
    main()
