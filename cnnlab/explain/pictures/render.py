"""Pictures of explanations: an overlay with a colour bar, a grid of methods, a sanity curve.

Maps arrive as tensors; this is the one place they become numpy and pixels (matplotlib, Agg).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import numpy as np
import torch


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _image(image: torch.Tensor) -> np.ndarray:
    array = image.detach().float().cpu().clamp(0, 1).numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def colour_limits(heat: torch.Tensor) -> tuple[str, float, float]:
    """Return the colour map and its limits (vmin, vmax) for a map: zero is always at one end or the middle.

    Signed maps span -m..m (blue-red) with m = max |map|; other maps span 0..max (jet). A bar
    stretched from the map's own min to max would make a nearly flat map (1.66-1.82) look as
    contrasted as a sharp one; anchored at zero, the flat map is one colour and the bar says why.
    """
    array = heat.detach().float()
    low, high = float(array.min()), float(array.max())
    # Negatives under 5% of the peak (interpolation ringing) do not make a map signed.
    if low < 0 and -low > 0.05 * max(high, 0.0):
        bound = max(-low, high)
        return "bwr", -bound, bound
    return "jet", 0.0, high if high > 0 else 1e-12


def _heat(heat: torch.Tensor) -> tuple[np.ndarray, str, float, float]:
    """Return the map as numpy with its colour map and limits (`colour_limits`)."""
    cmap, low, high = colour_limits(heat)
    return heat.detach().float().cpu().numpy(), cmap, low, high


def overlay(image: torch.Tensor, heat: torch.Tensor, path: Path, title: str) -> Path:
    """Write the heat map over the image, with a colour bar, as a PNG; return its path."""
    plt = _pyplot()
    array, cmap, low, high = _heat(heat)
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.0))
    axes[0].imshow(_image(image), cmap="gray" if image.shape[0] == 1 else None)
    axes[0].set_title("image", fontsize=9)
    axes[1].imshow(_image(image), cmap="gray" if image.shape[0] == 1 else None)
    shown = axes[1].imshow(array, cmap=cmap, vmin=low, vmax=high, alpha=0.55)
    axes[1].set_title(title, fontsize=9)
    for axis in axes:
        axis.axis("off")
    fig.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def grid(image: torch.Tensor, heats: dict[str, torch.Tensor], path: Path | IO[bytes], title: str) -> Path | IO[bytes]:
    """Write the image and each method's map side by side (the course's slide layout) as a PNG to a path or a binary file; return it."""
    plt = _pyplot()
    columns = min(6, len(heats) + 1)
    rows = -(-(len(heats) + 1) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, 2.3 * rows), squeeze=False)
    flat = list(axes.flat)
    flat[0].imshow(_image(image), cmap="gray" if image.shape[0] == 1 else None)
    flat[0].set_title(title, fontsize=8)
    for axis, (name, heat) in zip(flat[1:], heats.items(), strict=False):
        array, cmap, low, high = _heat(heat)
        axis.imshow(array, cmap=cmap, vmin=low, vmax=high)
        axis.set_title(name, fontsize=8)
    for axis in flat:
        axis.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return path


def sanity_curve(results: dict[str, list[dict[str, Any]]], path: Path, metric: str = "spearman_abs") -> Path:
    """Write the similarity to the trained model's map against layers randomised (logits down), one line per method."""
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(7.5, 4.0))
    labels: list[str] = []
    for method, rows in results.items():
        axis.plot(range(len(rows)), [r[metric] for r in rows], marker="o", markersize=3, label=method)
        labels = [r["layer"] for r in rows]
    axis.set_xticks(range(len(labels)))
    axis.set_xticklabels(labels, rotation=70, fontsize=6, ha="right")
    axis.axhline(0.0, color="grey", linewidth=0.6)
    axis.set_ylim(-0.6, 1.05)
    axis.set_ylabel(metric.replace("_", " "))
    axis.set_title("cascading randomisation (Adebayo et al. 2018): from the logits down")
    axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
