"""`cnnlab style CONTENT STYLE`: neural style transfer with a chosen feature extractor, as a PNG."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    """Add the style command."""
    parser = commands.add_parser("style", help="style transfer (Gatys et al. 2016) of one image onto another")
    parser.add_argument("content", help="content image (PNG or JPEG)")
    parser.add_argument("style", help="style image (PNG or JPEG)")
    parser.add_argument("--features", default="random",
                        help="feature extractor: random (multi-scale random filters), a run directory, or vgg19=PATH "
                             "(any zoo VGG with a local torchvision weights file)")
    parser.add_argument("--content-layers", default=None, help="comma-separated layer names (default: per extractor)")
    parser.add_argument("--style-layers", default=None, help="comma-separated layer names (default: per extractor)")
    parser.add_argument("--style-weight", type=float, default=10.0, help="weight of the (relative) style loss")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--optimiser", choices=["adam", "lbfgs"], default="adam")
    parser.add_argument("--size", type=int, default=128, help="side the content image is resized to")
    parser.add_argument("--out", default="style.png", help="PNG of content, style and result (a .json of the losses beside it)")
    parser.set_defaults(func=run_style)


def _extractor(spec: str):  # noqa: ANN202
    """Return the feature extractor `--features` names, on pixels in [0, 1]."""
    from cnnlab.errors import CnnlabError
    from cnnlab.explain.pixels import PixelModel
    from cnnlab.explain.style import RandomFeatures, vgg_features

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
    from cnnlab.explain.filters import save_grid, tile
    from cnnlab.explain.style import style_transfer

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
    layers = [None if text is None else [rename(n) for n in text.split(",")] for text in (args.content_layers, args.style_layers)]
    result = style_transfer(extractor, content, style, content_layers=layers[0], style_layers=layers[1],
                            style_weight=args.style_weight, steps=args.steps, optimiser=args.optimiser)
    out = Path(args.out)
    save_grid(tile(torch.stack([content, style, result.image]), columns=3), out, "content, style, result", scale=2.0)
    losses = {k: getattr(result, k) for k in ("style_start", "style_end", "content_end", "content_of_style")}
    out.with_suffix(".json").write_text(json.dumps(losses, indent=1))
    print(f"style loss {result.style_start:.4f} -> {result.style_end:.4f} ({result.style_start / max(result.style_end, 1e-12):.1f}x lower); "
          f"content loss {result.content_end:.4f} (the style image's own: {result.content_of_style:.4f}); wrote {out}")
    return 0
