"""Activation maximisation against the data set's top exemplar: prints JSON, writes the grid.

For each parameterisation, the channel's mean activation on the generated image (no transforms)
over that of the test image that drives the channel hardest (by the same spatial mean).
Usage: python benchmarks/activation_max.py RUN --layer L --channels 0-7 --data-dir DIR --out F.png
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from cnnlab.cli.visualize_run import parse_channels
from cnnlab.explain.kit.pixels import PixelModel
from cnnlab.explain.pictures.exemplars import batches_of, top_exemplars
from cnnlab.explain.pictures.featureviz import colour_matrix, maximise
from cnnlab.explain.pictures.filters import save_grid, tile
from cnnlab.runs.load import load_run


def main() -> None:
    """Print the ratios per parameterisation and channel as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--layer", default="stages.layer3.2")
    parser.add_argument("--channels", default="0-7")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--out", default="activation_max.png")
    args = parser.parse_args()
    run = load_run(args.run)
    model = PixelModel(run.model, run.normalisation.mean, run.normalisation.std)
    layer, channels = model.layer_name(args.layer), parse_channels(args.channels)
    images = run.test_split(args.data_dir).images
    top = top_exemplars(model, batches_of(images, 500, lambda b: b.float() / 255), layer, channels, k=1, by="mean")
    best = torch.tensor([top[c][0].score for c in channels])
    colour = colour_matrix(images[:1000].float() / 255)
    result = {"run": args.run, "layer": layer, "channels": channels, "test_images": len(images),
              "top_exemplar_mean": best.tolist(), "cpu": platform.processor() or platform.machine(), "parameterisations": {}}
    rows = []
    for kind in ("pixel", "fourier", "decorrelated"):
        start = time.perf_counter()
        made = maximise(model, layer, channels, image_size=tuple(images.shape[1:]), parameterisation=kind, steps=args.steps, colour=colour)
        ratio = made.scores / best
        result["parameterisations"][kind] = {"ratio": [round(r, 3) for r in ratio.tolist()], "min_ratio": round(float(ratio.min()), 3),
                                             "range": [float(made.images.min()), float(made.images.max())],
                                             "seconds": round(time.perf_counter() - start, 1)}
        rows.append(made.images)
    save_grid(tile(torch.cat(rows), columns=len(channels)), args.out,
              f"{layer}: channels {channels}; rows pixel, fourier, decorrelated", scale=4.0)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
