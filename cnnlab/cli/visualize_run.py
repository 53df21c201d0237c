"""The run-based pictures of `cnnlab visualize`: exemplars with deconvnet projections, embeddings, and dreams."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.devices import device_of
from cnnlab.errors import CnnlabError
from cnnlab.runs.outputs import Output


@dataclass(frozen=True)
class Maps:
    """A layer that gives (N, C, H, W) maps: its name and how many channels they have."""

    name: str
    channels: int

    def check(self, chosen: list[int]) -> list[int]:
        """Return `chosen` when every channel exists, else one line naming the range."""
        if chosen and max(chosen) >= self.channels:
            raise CnnlabError(f"layer {self.name} has {self.channels} channels (0-{self.channels - 1}): "
                              f"--channels {max(chosen)} is out of range")
        return chosen


def spatial_layer(run, layer: str) -> Maps:  # noqa: ANN001
    """Return `layer`'s maps when the run's model has it and it gives (N, C, H, W) maps; else a one-line error."""
    from cnnlab.explain.kit.hooks import capture, preserved, resolve_layer

    name, module = resolve_layer(run.model, layer)
    probe = torch.zeros(1, *run.info.image_size, device=device_of(run.model))
    with preserved(run.model), capture(module) as record, torch.no_grad():
        run.model(probe)
    if record.activation is None or record.activation.ndim != 4:
        shape = "no output" if record.activation is None else f"{tuple(record.activation.shape)} outputs"
        raise CnnlabError(f"layer {name} gives {shape}, not (N, C, H, W) maps: choose a convolutional layer "
                          "(cnnlab summary lists them)")
    return Maps(name, int(record.activation.shape[1]))


def _test_images(run, args: argparse.Namespace, default_count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
    """Return the (first --count, else `default_count`, else all) uint8 images and labels of the run's test split or of --data."""
    test = run.test_split(args.data_dir, args.data)
    if test.resident() is None:
        raise CnnlabError("the run's test split is streamed: exemplars and embeddings need an in-memory data set (--data)")
    count = args.count or default_count or len(test.images)  # --count is >= 1 when given (cli.options)
    return test.images[:count], test.labels[:count]


def exemplars(run, args: argparse.Namespace, maps: Maps, out: Output) -> Path:  # noqa: ANN001
    """Write each channel's top images as receptive-field crops beside their deconvnet projections; return the PNG."""
    from cnnlab.explain.pictures.exemplars import batches_of, crop, deconv_projection, top_exemplars
    from cnnlab.explain.pictures.filters import _unit, save_grid, tile

    layer = maps.name
    channels = maps.check(list(args.channels)) if args.channels else None
    images, _ = _test_images(run, args)
    top = args.top or 9
    found = top_exemplars(run.model, batches_of(images, 256, run.normalisation), layer, channels, k=top)
    tiles = []
    for channel, best in found.items():
        crops = [crop(images[e.index].float() / 255, e.window, fill=1.0) for e in best]
        projections = [crop(deconv_projection(run.model, run.normalisation(images[e.index:e.index + 1]), layer, channel, e.position).cpu(),
                            e.window) for e in best]
        tiles += crops + list(_unit(torch.stack(projections)))
    grid = tile(torch.stack(tiles), columns=2 * min(len(b) for b in found.values()))
    written = out.write("exemplars.png", lambda path: save_grid(
        grid, path, f"{run.info.model} {layer}: per channel, top {top} receptive-field crops, then their deconvnet projections",
        scale=3.0))
    out.text("exemplars.json", json.dumps({str(c): [e.__dict__ for e in best] for c, best in found.items()}, indent=1))
    return written


def embedding(run, args: argparse.Namespace, out: Output) -> Path:  # noqa: ANN001
    """Write the penultimate features of the test images, embedded in 2-D, as a scatter PNG; return it."""
    from cnnlab.explain.pictures.embedding import embed, penultimate, save_embedding
    from cnnlab.explain.pictures.exemplars import batches_of

    images, labels = _test_images(run, args, default_count=2000)
    points = embed(penultimate(run.model, batches_of(images, 256, run.normalisation)), args.method)
    title = f"{run.info.model}: penultimate features of {len(images)} test images, {args.method}"
    return out.write(f"embedding_{args.method}.png", lambda path: save_embedding(points, labels, run.classes, path, title))


def dream(run, args: argparse.Namespace, maps: Maps, out: Output) -> Path:  # noqa: ANN001
    """Write activation maximisation images of --channels (or DeepDream of --image) as a PNG; return it."""
    from cnnlab.data.images import read_image, resize_images
    from cnnlab.explain.kit.pixels import PixelModel
    from cnnlab.explain.pictures.featureviz import colour_matrix, maximise
    from cnnlab.explain.pictures.featureviz import dream as deep_dream
    from cnnlab.explain.pictures.filters import save_grid, tile

    layer, chosen = maps.name, maps.check(list(args.channels or range(min(8, maps.channels))))
    norm = run.normalisation
    model = PixelModel(run.model, norm.mean, norm.std)
    name = model.layer_name(layer)
    channels, height, width = run.info.image_size
    if args.image:
        picture = read_image(Path(args.image), channels)
        if picture is None:
            raise CnnlabError(f"cannot read image {args.image}: give a PNG or JPEG file")
        size = (args.size or height, args.size or width)
        base = resize_images(picture[None], *size)[0].float() / 255
        channel = chosen[0] if args.channels else None
        dreamt = deep_dream(model, base, name, channel=channel, octaves=args.octaves, steps=args.steps or 10)
        pair = tile(torch.stack([base, dreamt]), columns=2)
        return out.write("dream.png", lambda path: save_grid(pair, path, f"DeepDream on {name}: the image, then dreamt", scale=4.0))
    colour = None
    if args.parameterisation == "decorrelated" and channels == 3:
        test = run.test_split(args.data_dir, args.data)
        held = test.resident()
        colour = colour_matrix(held[:1000].float() / 255) if held is not None else None
    made = maximise(model, name, chosen, image_size=(channels, height, width), parameterisation=args.parameterisation,
                    steps=args.steps or 512, per_channel=args.per_channel, diversity=args.diversity, colour=colour)
    scores = ", ".join(f"{c}: {s:.2f}" for c, s in zip(made.channels, made.scores.tolist(), strict=True))
    print(f"channel mean activations: {scores}")
    grid = tile(made.images, columns=max(args.per_channel, min(8, len(made.images))))
    return out.write("dream.png", lambda path: save_grid(grid, path, f"{run.info.model} {layer}, {args.parameterisation}: "
                                                         f"channels {chosen}", scale=4.0))
