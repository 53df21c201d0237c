"""`cnnlab visualize`: a run's filters and feature maps, or an image through fixed kernels, as PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli.domains import Choice, Text
from cnnlab.cli.numeric import ImageSides, Integer, IntRanges, Number
from cnnlab.cli.options import Spec, add, option

WHATS = ("filters", "features", "kernels", "exemplars", "embedding", "dream")


def register(commands: argparse._SubParsersAction) -> None:
    """Add the visualize command."""
    parser = commands.add_parser("visualize", help="filters, feature maps, exemplars, embeddings, dreams or fixed kernels as PNGs")
    option(parser, Spec("what", Choice(WHATS), f"what to draw: {', '.join(WHATS)}", extra={"metavar": "WHAT"}))
    option(parser, Spec("subject", Text(), "run directory (filters, features, exemplars, embedding, dream), or an image file (kernels)",
                        extra={"metavar": "RUN"}))
    add(parser, "layer", help="conv layer (default: the first conv for filters, the last stage for the others)")
    option(parser, Spec("--image", Text(), "image file for features and DeepDream (default: the run's first test image)",
                        extra={"metavar": "FILE"}))
    add(parser, "data_dir")
    option(parser, Spec("--top", Integer(1, 4096), "feature maps shown, strongest first (default 16); exemplars per channel (9)"))
    option(parser, Spec("--channels", IntRanges(), "channels of --layer, e.g. 0-15 or 0,3,7 (exemplars, dream)",
                        deprecated=("--channel",)))
    add(parser, "data", help="data set for exemplars and embedding (default: the run's)")
    add(parser, "count", help="images of the data set used (default: all; embedding 2000)")
    option(parser, Spec("--method", Choice(("pca", "tsne")), "embedding method", "pca"))
    option(parser, Spec("--parameterisation", Choice(("pixel", "fourier", "decorrelated")), "dream's image parameters", "fourier"))
    add(parser, "steps", help="dream steps (default 512; DeepDream 10 per octave)")
    option(parser, Spec("--per-channel", Integer(1, 64), "dream images per channel", 1))
    option(parser, Spec("--diversity", Number(0), "weight pushing a channel's images apart", 0.0))
    option(parser, Spec("--octaves", Integer(1, 12), "DeepDream octaves", 3))
    option(parser, Spec("--size", ImageSides(low=8), "DeepDream image side in pixels (default: the run's input)"))
    add(parser, "out", help="folder to write into (default: the run directory, or the image's folder for kernels)")
    parser.set_defaults(func=run_visualize)


def run_visualize(args: argparse.Namespace) -> int:
    """Write the picture the subcommand names into --out, print where."""
    from torch import nn

    from cnnlab.data.images import read_image
    from cnnlab.errors import CnnlabError
    from cnnlab.explain.api import default_layer
    from cnnlab.explain.pictures.filters import (
        feature_grid,
        filter_grid,
        save_grid,
        through_kernels,
    )
    from cnnlab.runs.outputs import Output

    subject = Path(args.subject)
    if args.what == "kernels":
        out = Output(args.out or subject.parent)
        image = read_image(subject, 3)
        if image is None:
            raise CnnlabError(f"cannot read image {subject}: give a PNG or JPEG file")
        grid, names = through_kernels(image.float() / 255.0)
        written = out.write(f"{subject.stem}_kernels.png",
                            lambda path: save_grid(grid, path, "through: " + ", ".join(names[1:]), scale=2.0))
        print(f"wrote {written} ({len(names) - 1} kernel responses)")
        return 0
    if not subject.is_dir():
        raise CnnlabError(f"{subject} is not a run directory: visualize {args.what} reads a run written by cnnlab train")
    from cnnlab.cli import visualize_run
    from cnnlab.runs.load import load_run

    out = Output(args.out or subject)
    run = load_run(subject)
    model = run.model
    if args.what in ("exemplars", "embedding", "dream"):
        if args.what == "exemplars":
            written = visualize_run.exemplars(run, args, visualize_run.spatial_layer(run, args.layer or default_layer(model)), out)
        elif args.what == "embedding":
            written = visualize_run.embedding(run, args, out)
        else:
            written = visualize_run.dream(run, args, visualize_run.spatial_layer(run, args.layer or default_layer(model)), out)
        print(f"wrote {written}")
        return 0
    if args.what == "filters":
        layer = args.layer or next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
        if layer is None:
            raise CnnlabError(f"{run.info.model} has no convolution to show")
        grid = filter_grid(model, layer)
        written = out.write("filters.png", lambda path: save_grid(grid, path, f"{run.info.model}: {layer} kernels (each scaled alone)",
                                                                   scale=8.0))
    else:
        if args.image:
            picture = run.read_images([args.image])
        else:
            test = run.test_split(args.data_dir)
            held = test.resident()
            if held is None:
                raise CnnlabError("the run's test split is streamed: name an image with --image")
            picture = held[:1]
        layer = args.layer or default_layer(model)
        x = run.normalisation(picture)  # uint8 (1, C, H, W), as training normalised it
        grid, order = feature_grid(model, x, layer, top=args.top or 16)
        written = out.write("features.png", lambda path: save_grid(grid, path, f"{run.info.model}: {layer}, channels {order[:8]}... "
                                                                    "strongest first", scale=6.0))
    print(f"wrote {written}")
    return 0
