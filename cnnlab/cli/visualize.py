"""`cnnlab visualize`: a run's filters and feature maps, or an image through fixed kernels, as PNGs."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    """Add the visualize command."""
    parser = commands.add_parser("visualize", help="filters, feature maps or fixed kernels as a PNG grid")
    parser.add_argument("subject", help="run directory (filters, features), or an image file (kernels)")
    parser.add_argument("what", choices=["filters", "features", "kernels", "exemplars", "embedding", "dream"])
    parser.add_argument("--layer", default=None, help="conv layer (default: the first conv for filters, the last stage for features)")
    parser.add_argument("--image", default=None, help="image file for features (default: the run's first test image)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--top", type=int, default=None, help="feature maps shown, strongest first (16); exemplars per channel (9)")
    parser.add_argument("--channels", default=None, help="channels of --layer, e.g. 0-15 or 0,3,7 (exemplars, dream)")
    parser.add_argument("--channel", dest="channels", help="one channel (dream)")
    parser.add_argument("--data", default=None, help="data set for exemplars and embedding (default: the run's)")
    parser.add_argument("--count", type=int, default=None, help="images of the data set used (default: all; embedding 2000)")
    parser.add_argument("--method", choices=["pca", "tsne"], default="pca", help="embedding method")
    parser.add_argument("--parameterisation", choices=["pixel", "fourier", "decorrelated"], default="fourier", help="dream's image parameters")
    parser.add_argument("--steps", type=int, default=None, help="dream steps (512; DeepDream 10 per octave)")
    parser.add_argument("--per-channel", type=int, default=1, help="dream images per channel")
    parser.add_argument("--diversity", type=float, default=0.0, help="weight pushing a channel's images apart")
    parser.add_argument("--octaves", type=int, default=3, help="DeepDream octaves")
    parser.add_argument("--size", type=int, default=None, help="DeepDream image side (default: the run's input)")
    parser.add_argument("--out", default=None, help="PNG path (exemplars: a directory; default: RUN/<what>.png, or <image>_kernels.png)")
    parser.set_defaults(func=run_visualize)


def run_visualize(args: argparse.Namespace) -> int:
    """Write the grid the subcommand names, print where."""
    from torch import nn

    from cnnlab.data.images import read_image, resize_images
    from cnnlab.errors import CnnlabError
    from cnnlab.explain.core import default_layer
    from cnnlab.explain.filters import feature_grid, filter_grid, save_grid, through_kernels

    subject = Path(args.subject)
    if args.what == "kernels":
        image = read_image(subject, 3)
        if image is None:
            raise CnnlabError(f"cannot read image {subject}: give a PNG or JPEG file")
        grid, names = through_kernels(image.float() / 255.0)
        out = Path(args.out) if args.out else subject.with_name(subject.stem + "_kernels.png")
        save_grid(grid, out, "through: " + ", ".join(names[1:]), scale=2.0)
        print(f"wrote {out} ({len(names) - 1} kernel responses)")
        return 0
    if not subject.is_dir():
        raise CnnlabError(f"{subject} is not a run directory: filters and features read a run written by cnnlab train")
    from cnnlab.runs.load import load_run

    run = load_run(subject)
    model = run.model
    out = Path(args.out) if args.out else subject / f"{args.what}.png"
    if args.what in ("exemplars", "embedding", "dream"):
        from cnnlab.cli import visualize_run

        layer = args.layer or default_layer(model)
        if args.what == "exemplars":
            args.top = args.top or 9
            written = visualize_run.exemplars(run, args, layer)
        elif args.what == "embedding":
            written = visualize_run.embedding(run, args)
        else:
            written = visualize_run.dream(run, args, layer)
        print(f"wrote {written}")
        return 0
    if args.what == "filters":
        layer = args.layer or next((n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
        if layer is None:
            raise CnnlabError(f"{run.info.model} has no convolution to show")
        save_grid(filter_grid(model, layer), out, f"{run.info.model}: {layer} kernels (each scaled alone)", scale=8.0)
    else:
        channels, height, width = run.info.image_size
        if args.image:
            picture = read_image(Path(args.image), channels)
            if picture is None:
                raise CnnlabError(f"cannot read image {args.image}: give a PNG or JPEG file")
            picture = run.prepare(picture[None] if run.info.resize else resize_images(picture[None], height, width))
        else:
            test = run.test_split(args.data_dir)
            if not hasattr(test, "images"):
                raise CnnlabError("the run's test split is streamed: name an image with --image")
            picture = test.images[:1]
        layer = args.layer or default_layer(model)
        x = run.normalisation(picture)  # uint8 (1, C, H, W), as training normalised it
        grid, order = feature_grid(model, x, layer, top=args.top or 16)
        save_grid(grid, out, f"{run.info.model}: {layer}, channels {order[:8]}... strongest first", scale=6.0)
    print(f"wrote {out}")
    return 0
