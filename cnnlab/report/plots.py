"""The report's pictures: each a matplotlib figure or an image tensor, returned as an inline PNG data URI.

Inline images keep a report one self-contained file: it opens from disk, fetches nothing, and
needs no JavaScript.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cnnlab.explain.pictures.filters import fit_title
from cnnlab.explain.pictures.render import _pyplot as pyplot
from cnnlab.explain.pictures.render import grid


def png_uri(data: bytes) -> str:
    """Return PNG bytes as a data URI an <img> shows without a request."""
    return "data:image/png;base64," + base64.b64encode(data).decode()


def figure_uri(figure: Any, dpi: int = 100) -> str:
    """Return a matplotlib figure as a PNG data URI, and close it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(figure)
    return png_uri(buffer.getvalue())


def image_uri(image: torch.Tensor, scale: int = 1) -> str:
    """Return an image (C, H, W) in [0, 1] as a PNG data URI, each pixel a `scale` x `scale` block."""
    from PIL import Image

    picture = (image.detach().float().clamp(0, 1).cpu() * 255).round().to(torch.uint8)
    if scale > 1:
        picture = picture.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    array = picture[0].numpy() if picture.shape[0] == 1 else picture.permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return png_uri(buffer.getvalue())


#: metrics.csv columns drawn in each panel of the curves: (title, [(column, label)]).
PANELS = (
    ("loss", [("train_loss", "train"), ("val_loss", "validation")]),
    ("top-1 / top-5", [("train_acc", "train top-1"), ("val_acc", "validation top-1"), ("val_top5", "validation top-5")]),
    ("box AP (validation)", [("val_ap", "AP 0.5:0.95"), ("val_ap50", "AP50"), ("val_ap75", "AP75")]),
    ("class of each object's cell (training)", [("train_cls_acc", "train")]),
    ("learning rate (end of epoch)", [("lr", "lr")]),
    ("images/s (training)", [("images_per_second", "images/s")]),
)


MANY_RUNS = 3  # more runs than this share one legend below the curves


def curves(runs: Sequence[tuple[str, list[dict[str, float]]]]) -> str:
    """Return the training curves of one or more runs (name, metrics.csv rows), overlaid, as a data URI."""
    plt = pyplot()
    # Only the panels some run has a column of: a detection run has no top-1, a classifier no AP.
    panels = [(title, columns) for title, columns in PANELS
              if any(column in row for _, rows in runs for row in rows for column, _ in columns)]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    styles = ("-", "--", ":")
    for axis, (title, columns) in zip(axes[0], panels, strict=True):
        for run_index, (name, rows) in enumerate(runs):
            epochs = [row["epoch"] for row in rows]
            for column_index, (column, label) in enumerate(columns):
                values = [row.get(column, float("nan")) for row in rows]
                if all(np.isnan(v) for v in values):
                    continue
                tag = label if len(runs) == 1 else f"{name}: {label}"
                axis.plot(epochs, values, styles[column_index % 3], color=f"C{run_index}" if len(runs) > 1 else f"C{column_index}",
                          marker="o" if len(epochs) < 30 else None, markersize=3, label=tag)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0] and len(runs) <= MANY_RUNS:
            axis.legend(fontsize=7)
    if len(runs) > MANY_RUNS:
        # A legend per panel would list runs x curves and hide the panels (an experiment's nine
        # arms): one key below them instead, a colour per run and a line style per curve.
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=f"C{i}", label=name) for i, (name, _) in enumerate(runs)]
        handles += [Line2D([], [], color="black", linestyle=style, label=label)
                    for style, label in zip(styles, ("train", "validation", "validation top-5"), strict=True)]
        figure.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
        figure.tight_layout(rect=(0, 0.06 * (1 + len(handles) // 8), 1, 1))
    else:
        figure.tight_layout()
    return figure_uri(figure)


def confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    """Return the confusion matrix as counts and row-normalised, side by side, as a data URI."""
    plt = pyplot()
    counts = np.asarray(matrix, dtype=np.int64)
    normalised = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = min(2.5 + 0.45 * len(classes), 14.0)  # capped: a 1,000-class matrix stays a picture
    figure, axes = plt.subplots(1, 2, figsize=(2 * size, size))
    annotate = len(classes) <= 20
    labelled = len(classes) <= 60
    for axis, values, title, fmt in ((axes[0], counts, "counts", "d"), (axes[1], normalised, "fraction of the true class", ".2f")):
        shown = axis.imshow(values, cmap="Blues", vmin=0, vmax=values.max() if fmt == "d" else 1.0)
        figure.colorbar(shown, ax=axis, fraction=0.046)
        if labelled:
            ticks = range(len(classes))
            axis.set_xticks(ticks, classes, rotation=90, fontsize=7)
            axis.set_yticks(ticks, classes, fontsize=7)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        axis.set_title(title, fontsize=10)
        if annotate:
            threshold = values.max() / 2
            for (row, column), value in np.ndenumerate(values):
                if value:
                    axis.text(column, row, format(value, fmt), ha="center", va="center", fontsize=6,
                              color="white" if value > threshold else "black")
    figure.tight_layout()
    return figure_uri(figure)


def by_layer(history: Sequence[dict[str, Any]], pick: Any, title: str, log: bool = False) -> str:
    """Return one line per recorded epoch of a per-layer figure (`pick(line)` -> {layer: value}), layers in model order."""
    plt = pyplot()
    layers = list(pick(history[-1]))
    figure, axis = plt.subplots(figsize=(max(6.0, 0.28 * len(layers) + 2), 3.6))
    colours = plt.get_cmap("viridis")
    for number, line in enumerate(history):
        values = pick(line)
        axis.plot(range(len(layers)), [values.get(layer, np.nan) for layer in layers], marker="o", markersize=3,
                  color=colours(number / max(len(history) - 1, 1)), label=f"epoch {line['epoch']}")
    axis.set_xticks(range(len(layers)), layers, rotation=90, fontsize=6)
    if log:
        axis.set_yscale("log")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6, ncol=max(1, len(history) // 8))
    figure.tight_layout()
    return figure_uri(figure)


def heat_strip(image: torch.Tensor, heats: dict[str, torch.Tensor], caption: str) -> str:
    """Return explain's grid of an image (C, H, W) in [0, 1] beside each method's map, as a data URI."""
    buffer = io.BytesIO()
    grid(image, heats, buffer, caption)
    return png_uri(buffer.getvalue())


def _fit_column_labels(axis: Any, width: float, fontsize: float = 8) -> None:
    """Turn the column labels upright, then shrink them, until each fits its column `width` (data units) with a gap.

    Tiles of 8x8 digits are 30 pixels wide at scale 3, and "original" at 8 points is 40: side by side they overlap.
    """
    renderer = axis.figure.canvas.get_renderer()
    (left, _), (right, _) = axis.transData.transform([(0, 0), (width, 0)])
    room = 0.85 * abs(right - left)  # pixels a label may take, leaving a gap to the next

    def widest() -> float:
        return max(label.get_window_extent(renderer).width for label in axis.get_xticklabels())

    if widest() <= room:
        return
    for label in axis.get_xticklabels():
        label.set_rotation(90)  # upright, a label takes one line height of its column, not its length
    if widest() > room:
        for label in axis.get_xticklabels():
            label.set_fontsize(fontsize * room / widest())


def augment_figure(pictures: torch.Tensor, rows: Sequence[str], title: str, scale: int = 3) -> Any:
    """Return the matplotlib figure of views (N, 1 + D, C, H, W): one row per image, its original first, labelled."""
    plt = pyplot()
    count, columns = pictures.shape[:2]
    # One montage image with a 2-pixel white gutter, enlarged by whole pixels so nothing is smoothed.
    tiles = torch.nn.functional.pad(pictures.float().clamp(0, 1), (1, 1, 1, 1), value=1.0)
    channels, height, width = tiles.shape[2:]
    montage = tiles.permute(2, 0, 3, 1, 4).reshape(channels, count * height, columns * width)  # (C, N*H, (1+D)*W)
    montage = montage.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    array = montage[0].numpy() if channels == 1 else montage.permute(1, 2, 0).numpy()
    figure, axis = plt.subplots(figsize=(montage.shape[2] / 100 + 1.6, montage.shape[1] / 100 + 0.9), dpi=100)
    axis.imshow(array, cmap="gray" if channels == 1 else None, vmin=0, vmax=1, interpolation="nearest")
    axis.set_xticks([(c + 0.5) * width * scale for c in range(columns)],
                    ["original", *(f"draw {d}" for d in range(1, columns))], fontsize=8)
    axis.set_yticks([(r + 0.5) * height * scale for r in range(count)], list(rows), fontsize=8)
    axis.tick_params(length=0)
    axis.xaxis.tick_top()
    for spine in axis.spines.values():
        spine.set_visible(False)
    _fit_column_labels(axis, width * scale)
    fit_title(axis, title, fontsize=9, pad=18)  # not wrap=True: it wraps to nothing once upright labels lift the title off the figure
    return figure


def augment_grid(pictures: torch.Tensor, rows: Sequence[str], title: str, scale: int = 3) -> bytes:
    """Return a PNG of views (N, 1 + D, C, H, W): one row per image, its original first, labelled."""
    figure = augment_figure(pictures, rows, title, scale)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    pyplot().close(figure)
    return buffer.getvalue()
