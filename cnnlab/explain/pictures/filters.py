"""A trained network's filters and feature maps as image grids, and an image through fixed kernels.

Grids are tensors (C, H, W) in [0, 1] on the host; `save_grid` writes one as a PNG.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.hooks import capture, preserved, resolve_layer


def _unit(tiles: torch.Tensor) -> torch.Tensor:
    """Return each tile (T, C, h, w) min-max scaled to [0, 1] on its own (per-filter normalisation)."""
    flat = tiles.flatten(1)
    low, high = flat.amin(1).view(-1, 1, 1, 1), flat.amax(1).view(-1, 1, 1, 1)
    return (tiles - low) / (high - low).clamp(min=1e-12)


def tile(tiles: torch.Tensor, columns: int | None = None, pad: int = 1) -> torch.Tensor:
    """Return tiles (T, C, h, w) laid out in a grid (C, H, W) with `pad` pixels of white between them."""
    count, channels, height, width = tiles.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = torch.ones(channels, rows * (height + pad) + pad, columns * (width + pad) + pad)
    for index in range(count):
        r, c = divmod(index, columns)
        top, left = pad + r * (height + pad), pad + c * (width + pad)
        grid[:, top:top + height, left:left + width] = tiles[index]
    return grid


def filter_grid(model: nn.Module, layer: str, *, max_filters: int = 64) -> torch.Tensor:
    """Return a conv layer's kernels as a grid: RGB (or grey) tiles for a 3 (or 1) channel input, else one tile per (filter, channel)."""
    name, module = resolve_layer(model, layer)
    weight = getattr(module, "weight", None)
    if not isinstance(module, nn.Conv2d) or weight is None:
        raise CnnlabError(f"layer {name} is a {type(module).__name__}, not a convolution: choose a Conv2d (cnnlab summary lists them)")
    kernels = weight.detach().float().cpu()[:max_filters]  # (F, C, k, k)
    if kernels.shape[1] in (1, 3):
        return tile(_unit(kernels))
    # A deeper layer: each filter a row of its input channels' kernels, each tile scaled alone.
    channels = min(kernels.shape[1], 16)
    tiles = _unit(kernels[:, :channels].reshape(-1, 1, *kernels.shape[-2:]))
    return tile(tiles, columns=channels)


def feature_grid(model: nn.Module, image: torch.Tensor, layer: str, *, top: int = 16) -> tuple[torch.Tensor, list[int]]:
    """Return a layer's activations for one image (1, C, H, W), strongest channels first, as a grid, and their channel indices."""
    name, module = resolve_layer(model, layer)
    with preserved(model), capture(module) as record, torch.no_grad():
        model(image)
    act = record.activation
    if act is None or act.ndim != 4:
        raise CnnlabError(f"layer {name} gives no (N, C, H, W) map: choose a convolutional layer")
    maps = act[0].float().cpu()  # (C, h, w)
    order = maps.flatten(1).mean(1).argsort(descending=True)[:top]
    return tile(_unit(maps[order][:, None])), order.tolist()


def fit_title(axis: Any, text: str, fontsize: float = 9, **options: Any) -> Any:
    """Set the axis title, wrapped at spaces and then shrunk until it fits inside the figure's width; return it."""
    figure = axis.figure
    renderer = figure.canvas.get_renderer()
    title = axis.set_title(text, fontsize=fontsize, **options)
    centre = axis.get_window_extent(renderer).x0 + axis.get_window_extent(renderer).width / 2
    # The title is centred on the axes, so it may take twice the distance to the nearer figure edge.
    room = 0.96 * 2 * min(centre - figure.bbox.x0, figure.bbox.x1 - centre)
    width = title.get_window_extent(renderer).width
    if width > room:
        title.set_text("\n".join(textwrap.wrap(text, max(8, int(len(text) * room / width)))))
    while title.get_window_extent(renderer).width > room and title.get_fontsize() > 4:  # a word wider than the figure
        title.set_fontsize(title.get_fontsize() * 0.9)
    return title


def grid_figure(grid: torch.Tensor, title: str, scale: float = 4.0) -> Any:
    """Return the matplotlib figure of a grid (C, H, W) in [0, 1] under its title, laid out as `save_grid` writes it."""
    from cnnlab.explain.pictures.render import _pyplot

    plt = _pyplot()
    height, width = grid.shape[-2:]
    fig, axis = plt.subplots(figsize=(max(5.0, width * scale / 100), max(3.0, height * scale / 100) + 0.4), dpi=100)
    picture = grid[0].numpy() if grid.shape[0] == 1 else grid.permute(1, 2, 0).numpy()
    axis.imshow(picture, cmap="gray" if grid.shape[0] == 1 else None, vmin=0, vmax=1, interpolation="nearest")
    axis.axis("off")
    fit_title(axis, title)
    fig.tight_layout()  # after the title is wrapped, so its lines get their height
    return fig


def save_grid(grid: torch.Tensor, path: Path, title: str, scale: float = 4.0) -> Path:
    """Write a grid (C, H, W) in [0, 1] as a PNG with a title; return its path."""
    from cnnlab.explain.pictures.render import _pyplot

    fig = grid_figure(grid, title, scale)
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def through_kernels(image: torch.Tensor, banks: tuple[str, ...] = ("sobel", "prewitt", "laplacian", "gaussian", "box", "gabor")) -> tuple[torch.Tensor, list[str]]:
    """Return an image (C, H, W) in [0, 1] (as grey) through each fixed kernel bank, as a grid of responses, and their names."""
    from cnnlab.nn.kernels import bank

    grey = image.float().mean(0, keepdim=True)[None]  # (1, 1, H, W)
    tiles, names = [grey[0]], ["image"]
    for name in banks:
        conv = bank(name, 1)
        with torch.no_grad():
            responses = conv(grey)[0]  # (K, H, W)
        for index, response in enumerate(responses):
            tiles.append(response[None])
            names.append(f"{name}{index if len(responses) > 1 else ''}")
    return tile(_unit(torch.stack(tiles)), columns=min(8, len(tiles))), names
