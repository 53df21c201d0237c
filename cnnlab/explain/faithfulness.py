"""Faithfulness of a map: does removing what it ranks first hurt the model most?

- Deletion and insertion curves (Petsiuk et al. 2018, RISE's protocol): pixels in the map's
  order are replaced by a baseline (deletion) or restored onto one (insertion), a fixed number
  per step; the AUC is the trapezoid over the curve of the target probability on [0, 1]. A
  random ranking gives the reference: deletion AUC should lie below it, insertion above.
- Infidelity and max-sensitivity (Yeh et al. 2019).
All curves of all images run as shared, chunked forward passes.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain.core import attribute, auto_max_batch, predict, sampled_scores, seeded
from cnnlab.explain.gradient import gaussian_blur
from cnnlab.explain.hooks import no_inplace, preserved


def _probability(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return logits.softmax(1).gather(1, targets.view(-1, 1)).squeeze(1)


def trapezoid(curve: torch.Tensor) -> torch.Tensor:
    """Return the area under curves (N, S+1) sampled evenly on [0, 1]."""
    steps = curve.shape[1] - 1
    return (curve[:, 1:] + curve[:, :-1]).sum(1) / (2 * steps)


def pixel_curves(model: nn.Module, images: torch.Tensor, heat: torch.Tensor, targets: torch.Tensor, mode: str,
                 steps: int = 32, baseline: str = "blur", max_batch: int | None = None) -> torch.Tensor:
    """Return the target probability (N, steps + 1) as pixels are deleted or inserted in `heat`'s order (N, H, W)."""
    if mode not in ("deletion", "insertion"):
        raise CnnlabError(f"unknown curve {mode!r}: choose deletion or insertion")
    n, _, height, width = images.shape
    if heat.shape != (n, height, width):
        raise CnnlabError(f"maps of shape {tuple(heat.shape)} do not match images {tuple(images.shape)}: give one (H, W) map per image")
    if baseline == "blur":
        base = gaussian_blur(images, max(1.0, min(height, width) / 16))
    elif baseline in ("zero", "black"):
        base = torch.zeros_like(images)
    else:
        raise CnnlabError(f"unknown baseline {baseline!r}: choose blur or zero")
    pixels = height * width
    rank = torch.empty((n, pixels), dtype=torch.long, device=images.device)
    rank.scatter_(1, heat.flatten(1).argsort(1, descending=True), torch.arange(pixels, device=images.device).expand(n, -1))
    # Step s has changed the first round(s * pixels / steps) pixels of the ranking: a fixed count per step.
    counts = torch.round(torch.arange(steps + 1, device=images.device) * pixels / steps).long()
    start, end = (images, base) if mode == "deletion" else (base, images)
    with preserved(model), no_inplace():
        rows = max_batch or auto_max_batch(model, images)

        def make(i: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            changed = (rank[i] < counts[s][:, None]).view(-1, 1, height, width)
            return torch.where(changed, end[i], start[i])

        return sampled_scores(model, targets, n, steps + 1, make, rows, _probability)


def deletion_insertion(model: nn.Module, images: torch.Tensor, heat: torch.Tensor, targets: torch.Tensor, *,
                       steps: int = 32, baseline: str = "blur", seed: int = 0, max_batch: int | None = None) -> dict[str, Any]:
    """Return deletion and insertion AUCs (per image and mean) of `heat`, beside those of a random ranking."""
    random_heat = torch.rand(heat.shape, generator=seeded(seed, heat.device), device=heat.device)
    out: dict[str, Any] = {}
    for mode in ("deletion", "insertion"):
        for name, order in (("", heat), ("random_", random_heat)):
            auc = trapezoid(pixel_curves(model, images, order, targets, mode, steps, baseline, max_batch))
            out[f"{name}{mode}_auc"] = float(auc.mean())
            out[f"{name}{mode}_auc_per_image"] = auc.tolist()
    return out


def infidelity(model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets: torch.Tensor, *, samples: int = 32,
               noise: float = 0.1, seed: int = 0, normalize: bool = True, max_batch: int | None = None) -> torch.Tensor:
    """Return Yeh et al.'s infidelity E[(I . phi - (f(x) - f(x - I)))^2] per image, I ~ N(0, noise^2) (N,).

    With `normalize`, phi is first scaled by the least-squares optimal beta (Yeh et al. Sec. 3;
    Captum's normalize=True), so only the map's shape is judged, not its units.
    """
    n = len(images)
    generator = seeded(seed, images.device)
    perturb = noise * torch.randn((samples, *images.shape), generator=generator, device=images.device, dtype=images.dtype)
    with preserved(model), no_inplace():
        rows = max_batch or auto_max_batch(model, images)
        f_x = predict(model, images, rows).gather(1, targets.view(-1, 1))  # (N, 1)
        f_pert = sampled_scores(model, targets, n, samples, lambda i, s: images[i] - perturb[s, i], rows)  # (N, S)
    drop = (f_x - f_pert).double()
    dot = torch.einsum("snchw,nchw->ns", perturb.double(), maps.expand_as(images).double())
    if normalize:
        beta = (dot * drop).mean(1, keepdim=True) / (dot * dot).mean(1, keepdim=True).clamp(min=1e-30)
        dot = beta * dot
    return ((dot - drop) ** 2).mean(1)


def max_sensitivity(model: nn.Module, images: torch.Tensor, method: str, targets: torch.Tensor, *, samples: int = 8,
                    radius: float = 0.02, seed: int = 0, layer: str | None = None, max_batch: int | None = None,
                    **options: Any) -> torch.Tensor:
    """Return max over inputs within `radius` (L-inf, uniform) of ||phi(x') - phi(x)|| / ||phi(x)|| per image (Yeh et al. 2019)."""
    n = len(images)
    base = attribute(model, images, method, targets, layer, max_batch=max_batch, **options).heatmap()
    generator = seeded(seed, images.device)
    delta = (torch.rand((samples, *images.shape), generator=generator, device=images.device, dtype=images.dtype) * 2 - 1) * radius
    # All perturbed copies of all images in one call: the method batches them itself.
    shifted = (images[None] + delta).flatten(0, 1)
    moved = attribute(model, shifted, method, targets.repeat(samples), layer, max_batch=max_batch, **options).heatmap()
    moved = moved.view(samples, n, *base.shape[1:])
    change = (moved - base[None]).flatten(2).norm(dim=2) / base.flatten(1).norm(dim=1).clamp(min=1e-12)[None]
    return change.amax(0)


def faithfulness(model: nn.Module, images: torch.Tensor, methods: list[str], target: Any = None, layer: str | None = None, *,
                 steps: int = 32, baseline: str = "blur", seed: int = 0, max_batch: int | None = None,
                 options: dict[str, dict[str, Any]] | None = None, sensitivity: bool = True) -> list[dict[str, Any]]:
    """Return one row per method: deletion/insertion AUC beside the random ranking's, infidelity, max-sensitivity, seconds."""
    rows = []
    for method in methods:
        extra = (options or {}).get(method, {})
        attribution = attribute(model, images, method, target, layer, max_batch=max_batch, **extra)
        targets = attribution.targets
        heat = attribution.heatmap()
        row: dict[str, Any] = {"method": method, "seconds": round(attribution.seconds, 4)}
        row.update({k: v for k, v in deletion_insertion(model, images, heat, targets, steps=steps, baseline=baseline,
                                                        seed=seed, max_batch=max_batch).items() if not k.endswith("per_image")})
        maps = attribution.maps if attribution.maps.shape[1] in (1, images.shape[1]) else heat[:, None]
        row["infidelity"] = float(infidelity(model, images, maps, targets, seed=seed, max_batch=max_batch).mean())
        if sensitivity:
            row["max_sensitivity"] = float(max_sensitivity(model, images, method, targets, seed=seed, layer=layer,
                                                           max_batch=max_batch, **extra).mean())
        rows.append(row)
    return rows
