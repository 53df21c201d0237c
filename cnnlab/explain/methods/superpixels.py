"""The perturbation family's superpixel methods: LIME and KernelSHAP on SLIC, quickshift or grid superpixels.

Coalitions of superpixels are scored in shared, chunked forward passes (`kit.batching.sampled_scores`),
never one image at a time. Superpixels (SLIC, quickshift) come from scikit-image on the host, one
image at a time; everything after them stays on the model's device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.batching import sampled_scores
from cnnlab.explain.kit.noise import seeded
from cnnlab.explain.kit.options import Options, bound
from cnnlab.explain.kit.registry import check_options, register
from cnnlab.explain.kit.types import Context, Result
from cnnlab.explain.methods.perturbation import fill_images

SUPERPIXELS = ("slic", "quickshift", "grid")


@dataclass(frozen=True)
class LimeOptions(Options):
    """LIME (Ribeiro et al. 2016): samples, superpixels, the locality kernel and the ridge penalty."""

    samples: int | None = bound(1, 1_000_000)
    segments: int | None = bound(1)
    superpixels: str | None = bound(choices=SUPERPIXELS)
    kernel_width: float | None = bound(0, open_low=True)
    ridge: float | None = bound(0)


@dataclass(frozen=True)
class KernelShapOptions(Options):
    """KernelSHAP (Lundberg & Lee 2017): coalition samples and superpixels."""

    samples: int | None = bound(1, 1_000_000)
    segments: int | None = bound(1)
    superpixels: str | None = bound(choices=SUPERPIXELS)


def superpixels(images: torch.Tensor, method: str = "slic", segments: int = 50, **kwargs: Any) -> torch.Tensor:
    """Return superpixel labels (N, H, W) int64 from 0: SLIC or quickshift per image on the host (scikit-image), or a grid.

    An image that segments into a single region (noise, a flat picture) gets the grid instead.
    """
    if method == "grid":
        return grid_segments(images, segments)
    try:
        from skimage.segmentation import quickshift, slic
    except ImportError:
        raise CnnlabError("LIME and KernelSHAP superpixels use scikit-image: pip install 'cnnlab[explain]'") from None
    labels = []
    for image in images.detach().float().cpu():
        array = image.permute(1, 2, 0).numpy()
        low, high = float(array.min()), float(array.max())
        array = (array - low) / (high - low + 1e-12)
        if method == "slic":
            # A grey image goes in as (H, W): with channel_axis=None an (H, W, 1) array is a 3-D volume to SLIC.
            grey = array.shape[-1] == 1
            seg = slic(array[..., 0] if grey else array, n_segments=segments,
                       compactness=float(kwargs.get("compactness", 10.0)), start_label=0,
                       channel_axis=None if grey else -1)
        elif method == "quickshift":
            rgb = array if array.shape[-1] == 3 else array[..., :1].repeat(3, axis=-1)
            seg = quickshift(rgb.astype("float64"), kernel_size=float(kwargs.get("kernel_size", 4)),
                             max_dist=float(kwargs.get("max_dist", 200)), ratio=float(kwargs.get("ratio", 0.2)))
        else:
            raise CnnlabError(f"unknown superpixel method {method!r}: choose slic or quickshift")
        seg = torch.unique(torch.as_tensor(seg, dtype=torch.int64), return_inverse=True)[1]  # consecutive from 0
        labels.append(seg if int(seg.max()) > 0 else grid_segments(image[None], segments)[0].cpu())
    return torch.stack(labels).to(images.device)


def grid_segments(images: torch.Tensor, segments: int) -> torch.Tensor:
    """Return labels (N, H, W) of a near-square grid of about `segments` cells."""
    height, width = images.shape[-2:]
    side = max(1, round(math.sqrt(segments)))
    rows = torch.arange(height, device=images.device) * side // height
    cols = torch.arange(width, device=images.device) * side // width
    return (rows[:, None] * side + cols[None, :]).expand(len(images), height, width).clone()


def weighted_ridge(features: torch.Tensor, values: torch.Tensor, weights: torch.Tensor, ridge: float) -> torch.Tensor:
    """Return (intercept, coefficients...) of a weighted ridge fit per batch row: (B, S, M) -> (B, M + 1), in float64."""
    features, values, weights = features.double(), values.double(), weights.double()
    design = torch.cat([torch.ones_like(features[..., :1]), features], dim=-1)  # (B, S, M+1)
    weighted = design * weights[..., None]
    gram = design.transpose(1, 2) @ weighted
    penalty = ridge * torch.eye(gram.shape[-1], device=gram.device, dtype=gram.dtype)
    penalty[0, 0] = 0  # the intercept is not shrunk
    return torch.linalg.solve(gram + penalty, (weighted.transpose(1, 2) @ values[..., None])).squeeze(-1)


def shapley_kernel_weights(sizes: torch.Tensor, features: int) -> torch.Tensor:
    """Return the Shapley kernel pi(z) = (M - 1) / (C(M, |z|) |z| (M - |z|)) for coalition sizes (Lundberg & Lee 2017)."""
    m = features
    comb = torch.exp(torch.lgamma(torch.tensor(m + 1.0)) - torch.lgamma(sizes + 1.0) - torch.lgamma(m - sizes + 1.0))
    return (m - 1) / (comb * sizes * (m - sizes))


def shap_coalitions(features: int, samples: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return coalitions (S, M) in {0, 1} on the CPU and their regression weights, neither empty nor full.

    Every coalition when 2^M - 2 <= samples (then the fit gives the exact Shapley values);
    otherwise sizes drawn from the kernel's distribution over sizes, each coalition with its
    complement (paired sampling), weighted equally.
    """
    m = features
    if m < 2:
        raise CnnlabError(f"KernelSHAP needs at least 2 features, got {m}")
    if m <= 20 and 2 ** m - 2 <= samples:
        codes = torch.arange(1, 2 ** m - 1)
        z = ((codes[:, None] >> torch.arange(m)[None]) & 1).float()
        return z, shapley_kernel_weights(z.sum(1), m)
    generator = torch.Generator().manual_seed(seed)
    sizes = torch.arange(1, m, dtype=torch.float64)
    by_size = (m - 1) / (sizes * (m - sizes))  # the kernel summed over the C(M, k) coalitions of size k
    half = max(1, samples // 2)
    drawn = torch.multinomial(by_size / by_size.sum(), half, replacement=True, generator=generator) + 1
    ranks = torch.rand((half, m), generator=generator).argsort(1).argsort(1)
    z = (ranks < drawn[:, None]).float()
    z = torch.cat([z, 1 - z])
    return z, torch.ones(len(z))


def kernel_shap(value: Callable[[torch.Tensor], torch.Tensor], features: int, samples: int = 2048,
                seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return Shapley values (B, M) of set functions given as `value(z)` for coalitions z (S, M) -> (B, S).

    Solved as Lundberg & Lee's constrained weighted regression: the values add up to
    v(all) - v(none) exactly (the last feature is eliminated through that constraint).
    """
    z, weights = shap_coalitions(features, samples, seed)
    z, weights = z.to(device, torch.float64), weights.to(device, torch.float64)
    ends = torch.stack([torch.zeros(features, device=device, dtype=z.dtype), torch.ones(features, device=device, dtype=z.dtype)])
    v_ends = value(ends)  # (B, 2)
    v = value(z)  # (B, S)
    empty, full = v_ends[:, :1], v_ends[:, 1:]
    total = full - empty  # (B, 1)
    # y - z_M * total = sum_{j<M} phi_j (z_j - z_M)
    y = v - empty - z[None, :, -1] * total
    x = (z[:, :-1] - z[:, -1:])[None].expand(v.shape[0], -1, -1)
    w = weights[None].expand_as(v)
    gram = x.transpose(1, 2) @ (x * w[..., None])
    phi = torch.linalg.solve(gram + 1e-9 * torch.eye(features - 1, device=device, dtype=gram.dtype),
                             x.transpose(1, 2) @ (w * y)[..., None]).squeeze(-1)
    last = total[:, 0] - phi.sum(1)
    return torch.cat([phi, last[:, None]], dim=1)


def _segment_setup(images: torch.Tensor, options: dict[str, Any]) -> tuple[torch.Tensor, int, torch.Tensor]:
    segments = options.get("segments")
    if isinstance(segments, torch.Tensor):
        labels = segments.to(images.device).long().expand(len(images), *images.shape[-2:])
    else:
        labels = superpixels(images, str(options.get("superpixels", "slic")), int(segments or 50))
    count = int(labels.max()) + 1
    return labels, count, fill_images(images, options.get("fill", "mean"))


def _coalition_scores(ctx: Context, images: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor,
                      filled: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Return the target score (N, S) of each image with only coalition z's superpixels kept."""
    count = z.shape[1]
    flat = labels.clamp(max=count - 1).flatten(1)  # (N, H*W)
    shape = (-1, 1, *labels.shape[-2:])

    def make(i: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        keep = z[s].gather(1, flat[i]).view(shape).to(images.dtype)  # (B, 1, H, W): each pixel's superpixel kept?
        return images[i] * keep + filled[i] * (1 - keep)

    return sampled_scores(ctx.forward, targets, len(images), len(z), make, ctx.max_batch)


def _paint(labels: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Return per-pixel maps (N, 1, H, W) from per-superpixel values (N, M)."""
    return values.gather(1, labels.flatten(1)).view(labels.shape)[:, None]


@register("lime", "perturbation", seeded=True, options=LimeOptions)
def lime(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return LIME's superpixel weights: a weighted ridge fit of the score on kept superpixels (Ribeiro et al. 2016)."""
    check_options("lime", options, ["samples", "segments", "superpixels", "fill", "kernel_width", "ridge", "seed"])
    samples = int(options.get("samples", 1000))
    width = float(options.get("kernel_width", 0.25))
    ridge = float(options.get("ridge", 1.0))
    labels, count, filled = _segment_setup(images, options)
    generator = seeded(options.get("seed"), images.device)
    z = (torch.rand((samples, count), generator=generator, device=images.device) < 0.5).to(images.dtype)
    z[0] = 1  # the image itself, as LIME's first sample
    scores = _coalition_scores(ctx, images, targets, labels, filled, z)  # (N, S)
    # LIME's image kernel: exp(-d^2 / width^2) with d the cosine distance from the whole image.
    cosine = z.sum(1) / (z.norm(dim=1).clamp(min=1e-12) * math.sqrt(count))
    weights = torch.exp(-((1 - cosine) ** 2) / width ** 2)
    fit = weighted_ridge(z[None].expand(len(images), -1, -1), scores.to(images.dtype), weights[None].expand(len(images), -1), ridge)
    fit = fit.to(images.dtype)
    return Result(_paint(labels, fit[:, 1:]), {"samples": samples, "superpixels": count, "kernel_width": width, "ridge": ridge},
                  extras={"segments": labels, "weights": fit[:, 1:]})


@register("kernel_shap", "perturbation", seeded=True, options=KernelShapOptions)
def kernel_shap_method(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return KernelSHAP's Shapley values of the superpixels, painted on them (Lundberg & Lee 2017)."""
    check_options("kernel_shap", options, ["samples", "segments", "superpixels", "fill", "seed"])
    samples = int(options.get("samples", 1000))
    labels, count, filled = _segment_setup(images, options)
    values = kernel_shap(lambda z: _coalition_scores(ctx, images, targets, labels, filled, z.to(images.dtype)).double(),
                         count, samples, int(options.get("seed") or 0), images.device)
    return Result(_paint(labels, values.to(images.dtype)), {"samples": samples, "superpixels": count},
                  extras={"segments": labels, "weights": values})
