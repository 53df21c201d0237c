"""The run-based pictures of `cnnlab visualize`: exemplars with deconvnet projections, embeddings, and dreams."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cnnlab.errors import CnnlabError


def parse_channels(text: str) -> list[int]:
    """Return the channels a list like `0-15` or `0,3,7-9` names."""
    chosen: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            chosen.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise CnnlabError(f"cannot read channels {text!r}: give a list like 0-15 or 0,3,7-9") from None
    return chosen


def _test_images(run, args: argparse.Namespace, default_count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Return the (first --count, else `default_count`, else all) uint8 images and labels of the run's test split or of --data."""
    test = run.test_split(args.data_dir, args.data)
    if not hasattr(test, "images"):
        raise CnnlabError("the run's test split is streamed: exemplars and embeddings need an in-memory data set (--data)")
    count = args.count or default_count or len(test.images)
    return test.images[:count], test.labels[:count]


def exemplars(run, args: argparse.Namespace, layer: str) -> Path:  # noqa: ANN001
    """Write each channel's top images as receptive-field crops beside their deconvnet projections; return the PNG."""
    from cnnlab.explain.exemplars import batches_of, crop, deconv_projection, top_exemplars
    from cnnlab.explain.filters import _unit, save_grid, tile

    images, _ = _test_images(run, args)
    channels = parse_channels(args.channels) if args.channels else None
    found = top_exemplars(run.model, batches_of(images, 256, run.normalisation), layer, channels, k=args.top)
    out = Path(args.out) if args.out else run.path / "exemplars"
    out.mkdir(parents=True, exist_ok=True)
    tiles = []
    for channel, best in found.items():
        crops = [crop(images[e.index].float() / 255, e.window, fill=1.0) for e in best]
        projections = [crop(deconv_projection(run.model, run.normalisation(images[e.index:e.index + 1]), layer, channel, e.position).cpu(),
                            e.window) for e in best]
        tiles += crops + list(_unit(torch.stack(projections)))
    save_grid(tile(torch.stack(tiles), columns=2 * min(len(b) for b in found.values())), out / "exemplars.png",
              f"{run.info.model} {layer}: per channel, top {args.top} receptive-field crops, then their deconvnet projections", scale=3.0)
    (out / "exemplars.json").write_text(json.dumps({str(c): [e.__dict__ for e in best] for c, best in found.items()}, indent=1))
    return out / "exemplars.png"


def embedding(run, args: argparse.Namespace) -> Path:  # noqa: ANN001
    """Write the penultimate features of the test images, embedded in 2-D, as a scatter PNG; return it."""
    from cnnlab.explain.embedding import embed, penultimate, save_embedding
    from cnnlab.explain.exemplars import batches_of

    images, labels = _test_images(run, args, default_count=2000)
    points = embed(penultimate(run.model, batches_of(images, 256, run.normalisation)), args.method)
    out = Path(args.out) if args.out else run.path / f"embedding_{args.method}.png"
    return save_embedding(points, labels, run.classes, out, f"{run.info.model}: penultimate features of {len(images)} test images, {args.method}")


def dream(run, args: argparse.Namespace, layer: str) -> Path:  # noqa: ANN001
    """Write activation maximisation images of --channels (or DeepDream of --image) as a PNG; return it."""
    from cnnlab.data.images import read_image, resize_images
    from cnnlab.explain.featureviz import colour_matrix, maximise
    from cnnlab.explain.featureviz import dream as deep_dream
    from cnnlab.explain.filters import save_grid, tile
    from cnnlab.explain.pixels import PixelModel

    norm = run.normalisation
    model = PixelModel(run.model, norm.mean, norm.std)
    name = model.layer_name(layer)
    channels, height, width = run.info.image_size
    out = Path(args.out) if args.out else run.path / "dream.png"
    if args.image:
        picture = read_image(Path(args.image), channels)
        if picture is None:
            raise CnnlabError(f"cannot read image {args.image}: give a PNG or JPEG file")
        size = (args.size or height, args.size or width)
        base = resize_images(picture[None], *size)[0].float() / 255
        channel = parse_channels(args.channels)[0] if args.channels else None
        dreamt = deep_dream(model, base, name, channel=channel, octaves=args.octaves, steps=args.steps or 10)
        return save_grid(tile(torch.stack([base, dreamt]), columns=2), out, f"DeepDream on {name}: the image, then dreamt", scale=4.0)
    chosen = parse_channels(args.channels or "0-7")
    colour = None
    if args.parameterisation == "decorrelated" and channels == 3:
        test = run.test_split(args.data_dir, args.data)
        colour = colour_matrix(test.images[:1000].float() / 255) if hasattr(test, "images") else None
    made = maximise(model, name, chosen, image_size=(channels, height, width), parameterisation=args.parameterisation,
                    steps=args.steps or 512, per_channel=args.per_channel, diversity=args.diversity, colour=colour)
    scores = ", ".join(f"{c}: {s:.2f}" for c, s in zip(made.channels, made.scores.tolist(), strict=True))
    print(f"channel mean activations: {scores}")
    return save_grid(tile(made.images, columns=max(args.per_channel, min(8, len(made.images)))), out,
                     f"{run.info.model} {layer}, {args.parameterisation}: channels {chosen}", scale=4.0)
