"""Pictures of an attack: images, their adversarial twins and the perturbation, and robust accuracy against eps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _show(image: torch.Tensor) -> np.ndarray:
    array = image.detach().float().cpu().clamp(0, 1).numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def examples_png(images: torch.Tensor, adversarial: torch.Tensor, before: list[str], after: list[str], path: Path,
                 magnify: float | None = None) -> Path:
    """Write rows of (image, adversarial image, perturbation magnified to fill the range) as a PNG; return its path."""
    plt = _pyplot()
    count = len(images)
    delta = adversarial - images
    scale = magnify or 0.5 / max(float(delta.abs().max()), 1e-12)
    fig, axes = plt.subplots(count, 3, figsize=(5.4, 1.8 * count), squeeze=False)
    for row in range(count):
        grey = images.shape[1] == 1
        cells = [(_show(images[row]), f"clean: {before[row]}"), (_show(adversarial[row]), f"adversarial: {after[row]}"),
                 (_show(0.5 + scale * delta[row]), f"perturbation x{scale:.0f}")]
        for column, (picture, title) in enumerate(cells):
            axes[row, column].imshow(picture, cmap="gray" if grey else None, vmin=0, vmax=1)
            axes[row, column].set_title(title, fontsize=7)
            axes[row, column].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def curve_png(curves: dict[str, list[tuple[float, float]]], path: Path, title: str) -> Path:
    """Write robust accuracy against eps, one line per attack, as a PNG; return its path."""
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(5.5, 3.6))
    for name, points in curves.items():
        axis.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o", label=name)
    axis.set_xlabel("eps (pixel scale 0..1)")
    axis.set_ylabel("accuracy %")
    axis.set_ylim(0, 100)
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
