"""Sanity checks of explanations (Adebayo et al. 2018): does the map depend on what the model learned?

- Cascading model-parameter randomisation: re-initialise the weighted layers one by one from
  the logits down, on a copy of the model, and measure how similar each map stays to the
  trained model's (Spearman rank correlation of absolute and of signed maps, SSIM, and the
  correlation of HOG features). A method that passes falls towards 0 as layers go.
- Data randomisation: compare the maps of the model with those of the same architecture
  trained on permuted labels (`data.random_labels=true`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.devices import device_of
from cnnlab.errors import CnnlabError
from cnnlab.explain.api import attribute
from cnnlab.explain.kit.batching import predict


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Return the ranks (from 0) of each row of (N, K) values, ties sharing their mean rank (as scipy's rankdata)."""
    order = values.argsort(1)
    ordered = values.gather(1, order)
    ranks = torch.empty_like(values, dtype=torch.float64)
    for row in range(values.shape[0]):
        _, inverse, counts = torch.unique_consecutive(ordered[row], return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).double()
        mean_rank = ends - (counts.double() + 1) / 2  # the mean of positions end-count .. end-1
        ranks[row, order[row]] = mean_rank[inverse]
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Return the Spearman rank correlation of each row pair of (N, ...) tensors (N,), ties at their mean rank.

    Mean ranks matter here: maps with many exact zeros (an input x gradient map on an MNIST
    background) would otherwise correlate through the order of their zeros alone.
    """
    ra, rb = average_ranks(a.flatten(1)), average_ranks(b.flatten(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1)).clamp(min=1e-12)


def _unit(maps: np.ndarray) -> np.ndarray:
    low, high = maps.min(), maps.max()
    return (maps - low) / (high - low) if high > low else np.zeros_like(maps)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Return the SSIM of two maps (H, W), each min-max scaled to [0, 1] first (scikit-image)."""
    from skimage.metrics import structural_similarity

    side = min(a.shape)
    window = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(_unit(a), _unit(b), data_range=1.0, win_size=max(window, 3)))


def hog_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Return the Pearson correlation of the HOG features of two maps (H, W) (Adebayo et al.'s third metric)."""
    from skimage.feature import hog

    cell = max(2, min(a.shape) // 8)
    fa = hog(_unit(a), pixels_per_cell=(cell, cell), cells_per_block=(2, 2), feature_vector=True)
    fb = hog(_unit(b), pixels_per_cell=(cell, cell), cells_per_block=(2, 2), feature_vector=True)
    if fa.std() == 0 or fb.std() == 0:
        return 0.0
    return float(np.corrcoef(fa, fb)[0, 1])


def similarity(reference: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """Return the four similarities of two batches of heat maps (N, H, W), averaged over the images."""
    ref, oth = reference.detach().float(), other.detach().float()
    ref_np, oth_np = ref.cpu().numpy(), oth.cpu().numpy()
    return {
        "spearman_abs": float(spearman(ref.abs(), oth.abs()).mean()),
        "spearman": float(spearman(ref, oth).mean()),
        "ssim": float(np.mean([ssim(np.abs(r), np.abs(o)) for r, o in zip(ref_np, oth_np, strict=True)])),
        "hog": float(np.mean([hog_similarity(np.abs(r), np.abs(o)) for r, o in zip(ref_np, oth_np, strict=True)])),
    }


def weighted_layers(model: nn.Module) -> list[str]:
    """Return the names of the conv and linear layers in registration order (input to logits)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear) and m.weight is not None]


@torch.no_grad()
def _randomise(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw a layer's weights as Kaiming-normal (fan-in) and zero its bias, as a fresh layer's scale."""
    weight = module.weight
    fan_in = weight[0].numel()
    draw = torch.randn(weight.shape, generator=generator, dtype=torch.float32).to(weight.device, weight.dtype)
    weight.copy_(draw * (2.0 / fan_in) ** 0.5)
    if getattr(module, "bias", None) is not None:
        module.bias.zero_()


@dataclass(frozen=True)
class SanityResult:
    """The similarity curve of a method as layers are randomised, first row the trained model."""

    method: str
    rows: list[dict[str, Any]]  # {"layer": name, "randomised": k, spearman_abs, spearman, ssim, hog}

    def final(self) -> dict[str, Any]:
        """Return the last row: every layer randomised."""
        return self.rows[-1]


def cascading_randomization(model: nn.Module, images: torch.Tensor, method: str, target: Any = None,
                            layer: str | None = None, *, layers: Sequence[str] | None = None, init_seed: int = 0,
                            max_batch: int | None = None, **options: Any) -> SanityResult:
    """Return the similarity of `method`'s maps to the trained model's as layers are randomised from the logits down."""
    if target is None:
        was = model.training
        model.eval()
        try:
            target = predict(model, images.to(device_of(model)), max_batch or 64).argmax(1)
        finally:
            model.train(was)
    original = attribute(model, images, method, target, layer, max_batch=max_batch, **options)
    order = list(layers) if layers is not None else weighted_layers(model)[::-1]
    if not order:
        raise CnnlabError(f"{type(model).__name__} has no conv or linear layer to randomise")
    shadow = copy.deepcopy(model)  # the user's model is never touched
    modules = dict(shadow.named_modules())
    generator = torch.Generator().manual_seed(init_seed)
    rows: list[dict[str, Any]] = [{"layer": "original", "randomised": 0, **similarity(original.heatmap(), original.heatmap())}]
    for count, name in enumerate(order, start=1):
        if name not in modules:
            raise CnnlabError(f"the model has no layer {name!r} to randomise")
        _randomise(modules[name], generator)
        after = attribute(shadow, images, method, original.targets, layer, max_batch=max_batch, **options)
        rows.append({"layer": name, "randomised": count, **similarity(original.heatmap(), after.heatmap())})
    return SanityResult(method, rows)


def data_randomization(model: nn.Module, random_model: nn.Module, images: torch.Tensor, method: str,
                       target: Any = None, layer: str | None = None, *, max_batch: int | None = None,
                       **options: Any) -> dict[str, float]:
    """Return the similarity of `method`'s maps of `model` and of the same network trained on permuted labels."""
    trained = attribute(model, images, method, target, layer, max_batch=max_batch, **options)
    shuffled = attribute(random_model, images, method, trained.targets, layer, max_batch=max_batch, **options)
    return similarity(trained.heatmap(), shuffled.heatmap())
