"""`cnnlab style CONTENT STYLE`: neural style transfer with a chosen feature extractor, as a PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli.domains import Choice, Text, Words
from cnnlab.cli.numeric import ImageSides, Number
from cnnlab.cli.options import Spec, add, option
from cnnlab.cli.reconcile import out_folder


def register(commands: argparse._SubParsersAction) -> None:
    """Add the style command."""
    parser = commands.add_parser("style", help="style transfer (Gatys et al. 2016) of one image onto another")
    option(parser, Spec("content", Text(), "content image (PNG or JPEG)", extra={"metavar": "CONTENT"}))
    option(parser, Spec("style", Text(), "style image (PNG or JPEG)", extra={"metavar": "STYLE"}))
    option(parser, Spec("--features", Text(), "feature extractor: random (multi-scale random filters), a run directory, or "
                        "vgg19=PATH (any zoo VGG with a local torchvision weights file)", "random"))
    option(parser, Spec("--content-layers", Words(what="layer"), "comma-separated layer names (default: per extractor)"))
    option(parser, Spec("--style-layers", Words(what="layer"), "comma-separated layer names (default: per extractor)"))
    option(parser, Spec("--style-weight", Number(0, open_low=True), "weight of the (relative) style loss", 10.0))
    add(parser, "steps", default=300)
    option(parser, Spec("--optimiser", Choice(("adam", "lbfgs")), "the optimiser of the image's pixels", "adam"))
    option(parser, Spec("--size", ImageSides(low=16), "side the content image is resized to, in pixels", 128))
    add(parser, "out", default=".", help="folder to write style.png (content, style, result) and style.json (the losses) into")
    parser.set_defaults(func=run_style)


def _extractor(spec: str):  # noqa: ANN202
    """Return the feature extractor `--features` names, on pixels in [0, 1]."""
    from cnnlab.errors import CnnlabError
    from cnnlab.explain.kit.pixels import PixelModel
    from cnnlab.explain.pictures.style import RandomFeatures, vgg_features

    if spec == "random":
        return RandomFeatures()
    if "=" in spec:
        name, _, path = spec.partition("=")
        if not name.startswith("vgg"):
            raise CnnlabError(f"--features {spec}: a weights file goes with a zoo VGG (vgg16=PATH, vgg19=PATH)")
        return vgg_features(name, path)
    if Path(spec).is_dir():
        from cnnlab.runs.load import load_run

        run = load_run(spec)
        return PixelModel(run.model, run.normalisation.mean, run.normalisation.std)
    raise CnnlabError(f"--features {spec}: give random, a run directory, or vgg19=PATH to torchvision's weights")


def run_style(args: argparse.Namespace) -> int:
    """Transfer the style, write the picture and the losses, print them."""
    import torch

    from cnnlab.data.images import read_image, resize_images
    from cnnlab.errors import CnnlabError
    from cnnlab.explain.pictures.filters import save_grid, tile
    from cnnlab.explain.pictures.style import style_transfer
    from cnnlab.runs.outputs import Output

    folder, legacy = out_folder(args, ".png")
    out = Output(folder)
    pictures = []
    for path in (args.content, args.style):
        picture = read_image(Path(path), 3)
        if picture is None:
            raise CnnlabError(f"cannot read image {path}: give a PNG or JPEG file")
        pictures.append(picture)
    content = resize_images(pictures[0][None], args.size, args.size)[0].float() / 255
    style = resize_images(pictures[1][None], args.size, args.size)[0].float() / 255
    extractor = _extractor(args.features)
    rename = getattr(extractor, "layer_name", lambda name: name)  # a run's own layer names, behind its normalisation
    layers = [None if names is None else [rename(n) for n in names] for names in (args.content_layers, args.style_layers)]
    result = style_transfer(extractor, content, style, content_layers=layers[0], style_layers=layers[1],
                            style_weight=args.style_weight, steps=args.steps, optimiser=args.optimiser)
    grid = tile(torch.stack([content, style, result.image]), columns=3)
    picture = out.write(legacy or "style.png", lambda path: save_grid(grid, path, "content, style, result", scale=2.0))
    out.json("style.json", {k: getattr(result, k) for k in ("style_start", "style_end", "content_end", "content_of_style")})
    print(f"style loss {result.style_start:.4f} -> {result.style_end:.4f} ({result.style_start / max(result.style_end, 1e-12):.1f}x lower); "
          f"content loss {result.content_end:.4f} (the style image's own: {result.content_of_style:.4f}); wrote {picture}")
    return 0
