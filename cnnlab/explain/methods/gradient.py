"""The gradient family: saliency, input x gradient, SmoothGrad (and its square and variance),
Integrated Gradients, Expected Gradients / GradientSHAP, DeepLIFT, guided backprop, deconvnet.

All but DeepLIFT are this project's own code on `core.sampled_gradients`, so path steps and
noise draws of several images share one forward pass. DeepLIFT wraps Captum's (extra `explain`).
Baselines are given in the space of `images`: `black` is 0 there, so explain pixel images
([0, 1]) through `explain.PixelModel` when black should mean a black picture.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.batching import pick, sampled_gradients
from cnnlab.explain.kit.hooks import relu_backward
from cnnlab.explain.kit.images import baseline_of
from cnnlab.explain.kit.noise import TUNNELS, image_noise, seeded, smooth
from cnnlab.explain.kit.options import Options, bound
from cnnlab.explain.kit.quadrature import gauss_legendre, riemann
from cnnlab.explain.kit.registry import check_options, register
from cnnlab.explain.kit.types import Context, Result

BASELINES = ("black", "blur", "noise")


@dataclass(frozen=True)
class IntegratedGradientsOptions(Options):
    """Integrated Gradients (Sundararajan et al. 2017): the path integral's quadrature and baseline."""

    steps: int | None = bound(1, 100_000)
    rule: str | None = bound(choices=("gauss_legendre", "left", "right", "middle", "trapezoid"))
    baseline: str | float | None = bound(choices=BASELINES)
    sigma: float | None = bound(0, open_low=True)  # the blur baseline's Gaussian sigma in pixels
    low: float | None = None  # the noise baseline's range
    high: float | None = None


@dataclass(frozen=True)
class NoiseOptions(Options):
    """SmoothGrad-style sampling: how many noisy copies, and their noise as a fraction of the input range."""

    samples: int | None = bound(1, 100_000)
    noise: float | None = bound(0)


@dataclass(frozen=True)
class DeepLiftOptions(Options):
    """DeepLIFT (Shrikumar et al. 2017): the reference input."""

    baseline: str | float | None = bound(choices=BASELINES)
    sigma: float | None = bound(0, open_low=True)  # the blur baseline's Gaussian sigma in pixels
    low: float | None = None  # the noise baseline's range
    high: float | None = None



def _plain(ctx: Context, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Return the target score's gradient at each image (N, C, H, W), chunk by chunk (slices, no gathers)."""
    grads = []
    for start in range(0, len(images), ctx.max_batch):
        x = images[start:start + ctx.max_batch].detach().requires_grad_(True)
        with torch.enable_grad():
            score = pick(ctx.forward(x), targets[start:start + ctx.max_batch])
            grads.append(torch.autograd.grad(score.sum(), x)[0])
    return grads[0] if len(grads) == 1 else torch.cat(grads)


@register("saliency", "gradient", absolute=True)
def saliency(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return |d score / d x| (Simonyan, Vedaldi, Zisserman 2014)."""
    check_options("saliency", options, [])
    return Result(_plain(ctx, images, targets).abs(), {})


@register("input_x_gradient", "gradient")
def input_x_gradient(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return x * d score / d x (Shrikumar et al. 2016)."""
    check_options("input_x_gradient", options, [])
    return Result(images * _plain(ctx, images, targets), {})


def gradient(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return d score / d x, signed: what the noise tunnels average (not registered: saliency is its magnitude)."""
    check_options("smoothgrad", options, [])
    return Result(_plain(ctx, images, targets), {})


def _tunnel(name: str, kind: str) -> None:
    """Register `name` as the noise tunnel `kind` over the plain gradient, its options checked first."""
    tunnel = smooth(gradient, kind)

    def run(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
        check_options(name, options, ["samples", "noise", "seed"])
        return tunnel(ctx, images, targets, **options)

    run.__doc__ = tunnel.__doc__
    register(name, "gradient", absolute=kind != "mean", seeded=True, options=NoiseOptions)(run)


# Smilkov et al. 2017 (SmoothGrad), Hooker et al. 2019 (its square), Adebayo et al. 2018 (VarGrad).
for _name, _kind in TUNNELS.items():
    _tunnel(_name, _kind)


@register("integrated_gradients", "gradient", options=IntegratedGradientsOptions)
def integrated_gradients(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return (x - x') * the path integral of the gradient from baseline x' to x (Sundararajan et al. 2017)."""
    check_options("integrated_gradients", options, ["steps", "rule", "baseline", "sigma", "low", "high", "seed"])
    steps = int(options.get("steps", 32))
    rule = str(options.get("rule", "gauss_legendre"))
    baseline = options.get("baseline", "black")
    if steps < 1:
        raise CnnlabError(f"integrated_gradients needs steps >= 1, got {steps}")
    if rule == "gauss_legendre":
        alphas, weights = gauss_legendre(steps, images.device)
    else:
        alphas, weights = riemann(steps, images.device, rule)
    base = baseline_of(images, baseline, options)
    delta = images - base
    alphas, weights = alphas.to(images.dtype), weights.to(images.dtype)

    def make(i: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return base[i] + alphas[s].view(-1, 1, 1, 1) * delta[i]

    def combine(i: torch.Tensor, s: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (weights[s].view(-1, 1, 1, 1) * g)[None]

    mean_grad = sampled_gradients(ctx.forward, targets, len(images), steps, make, combine, ctx.max_batch)[0]
    resolved = {"steps": steps, "rule": rule, "baseline": baseline if not isinstance(baseline, torch.Tensor) else "tensor"}
    return Result(delta * mean_grad, resolved, extras={"baseline": base})


def _expected(ctx: Context, images: torch.Tensor, targets: torch.Tensor, name: str, options: dict[str, Any],
              default_noise: float) -> Result:
    check_options(name, options, ["samples", "baselines", "noise", "seed"])
    samples = int(options.get("samples", 32))
    noise = float(options.get("noise", default_noise))
    references = options.get("baselines")
    if references is None:
        references = torch.zeros_like(images[:1])
    references = torch.as_tensor(references).to(images.device, images.dtype)
    if references.ndim == 3:
        references = references[None]
    if references.shape[1:] != images.shape[1:]:
        raise CnnlabError(f"baselines of shape {tuple(references.shape[1:])} do not match images {tuple(images.shape[1:])}")
    generator = seeded(options.get("seed"), images.device)
    # One draw of (reference, alpha, noise) per (image, sample), made up front so a call repeats exactly.
    pick_ref = torch.randint(len(references), (len(images), samples), generator=generator, device=images.device)
    alphas = torch.rand((len(images), samples), generator=generator, device=images.device, dtype=images.dtype)
    seed = options.get("seed")

    def point(i: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images[i] if noise == 0 else images[i] + noise * image_noise(i, s, samples, tuple(images.shape[1:]), seed, images)
        return x, references[pick_ref[i, s]]

    def make(i: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x, ref = point(i, s)
        return ref + alphas[i, s].view(-1, 1, 1, 1) * (x - ref)

    def combine(i: torch.Tensor, s: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        # x = ref + alpha (x_i - ref), so x_i - ref = (x - ref) / alpha; recompute instead to stay exact.
        point_x, ref = point(i, s)
        return ((point_x - ref) * g)[None]

    maps = sampled_gradients(ctx.forward, targets, len(images), samples, make, combine, ctx.max_batch)[0] / samples
    return Result(maps, {"samples": samples, "noise": noise, "references": len(references), "seed": options.get("seed", 0)})


@register("expected_gradients", "gradient", seeded=True, options=NoiseOptions)
def expected_gradients(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return E over references x' and alpha ~ U(0, 1) of (x - x') * grad at x' + alpha (x - x') (Erion et al. 2021)."""
    return _expected(ctx, images, targets, "expected_gradients", options, 0.0)


@register("gradient_shap", "gradient", seeded=True, options=NoiseOptions)
def gradient_shap(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return Expected Gradients with Gaussian noise on the input (Lundberg & Lee 2017's GradientExplainer)."""
    return _expected(ctx, images, targets, "gradient_shap", options, 0.09)


def _relu_rule(ctx: Context, images: torch.Tensor, targets: torch.Tensor, mode: str) -> torch.Tensor:
    with relu_backward(mode) as seen:
        grads = _plain(ctx, images, targets)
    if not seen:
        raise CnnlabError(f"{mode} backprop changes ReLU backward passes, and this model ran no ReLU: use saliency")
    return grads


@register("guided_backprop", "gradient")
def guided_backprop(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return the gradient with every ReLU passing only positive gradients where its input was positive (Springenberg et al. 2015)."""
    check_options("guided_backprop", options, [])
    return Result(_relu_rule(ctx, images, targets, "guided"), {})


@register("deconvnet", "gradient")
def deconvnet(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return the deconvnet projection: ReLUs rectify the backward signal only (Zeiler & Fergus 2014)."""
    check_options("deconvnet", options, [])
    return Result(_relu_rule(ctx, images, targets, "deconvnet"), {})


@register("deeplift", "gradient", options=DeepLiftOptions)
def deeplift(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return DeepLIFT's rescale-rule attributions against a baseline (Shrikumar et al. 2017), via Captum."""
    check_options("deeplift", options, ["baseline", "sigma", "low", "high", "seed"])
    try:
        from captum.attr import DeepLift
    except ImportError:
        raise CnnlabError("deeplift uses Captum: pip install 'cnnlab[explain]'") from None
    baseline = options.get("baseline", "black")
    base = baseline_of(images, baseline, options)
    explainer = DeepLift(ctx.model)
    # Captum runs inputs and baselines as one batch of twice the rows.
    rows = max(1, ctx.max_batch // 2)
    maps = []
    for start in range(0, len(images), rows):
        chunk = slice(start, start + rows)
        with torch.enable_grad(), warnings.catch_warnings():
            # Captum notes that it set requires_grad and hooked the activations; both are undone on return.
            warnings.simplefilter("ignore", UserWarning)
            try:
                maps.append(explainer.attribute(images[chunk].detach().requires_grad_(True), base[chunk], target=targets[chunk]).detach())
            except (RuntimeError, AssertionError) as error:
                first = str(error).strip().splitlines()[0][:140] if str(error).strip() else type(error).__name__
                raise CnnlabError(f"deeplift (Captum) cannot run on {type(ctx.model).__name__} ({first}); Captum needs a separate "
                                  "nn.ReLU module at each use (torchvision's ResNets reuse one): use integrated_gradients or lrp") from None
    return Result(torch.cat(maps), {"baseline": baseline if not isinstance(baseline, torch.Tensor) else "tensor"})
