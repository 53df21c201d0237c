"""The gradient family: saliency, input x gradient, SmoothGrad (and its square and variance),
Integrated Gradients, Expected Gradients / GradientSHAP, DeepLIFT, guided backprop, deconvnet.

All but DeepLIFT are this project's own code on `core.sampled_gradients`, so path steps and
noise draws of several images share one forward pass. DeepLIFT wraps Captum's (extra `explain`).
Baselines are given in the space of `images`: `black` is 0 there, so explain pixel images
([0, 1]) through `explain.PixelModel` when black should mean a black picture.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from cnnlab.data.augment.filters import gaussian_blur as batch_blur
from cnnlab.errors import CnnlabError
from cnnlab.explain.core import (
    Context,
    Result,
    check_options,
    gauss_legendre,
    image_noise,
    pick,
    register,
    riemann,
    sampled_gradients,
    seeded,
)
from cnnlab.explain.hooks import relu_backward


def _plain(ctx: Context, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Return the target score's gradient at each image (N, C, H, W), chunk by chunk (slices, no gathers)."""
    grads = []
    for start in range(0, len(images), ctx.max_batch):
        x = images[start:start + ctx.max_batch].detach().requires_grad_(True)
        with torch.enable_grad():
            score = pick(ctx.forward(x), targets[start:start + ctx.max_batch])
            grads.append(torch.autograd.grad(score.sum(), x)[0])
    return grads[0] if len(grads) == 1 else torch.cat(grads)


@register("saliency", "gradient")
def saliency(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return |d score / d x| (Simonyan, Vedaldi, Zisserman 2014)."""
    check_options("saliency", options, [])
    return Result(_plain(ctx, images, targets).abs(), {})


@register("input_x_gradient", "gradient")
def input_x_gradient(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return x * d score / d x (Shrikumar et al. 2016)."""
    check_options("input_x_gradient", options, [])
    return Result(images * _plain(ctx, images, targets), {})


def _noise_scale(images: torch.Tensor, noise: float) -> torch.Tensor:
    """Return sigma per image: `noise` times the image's value range (Smilkov et al. 2017, Sec. 3)."""
    flat = images.flatten(1)
    return (noise * (flat.amax(1) - flat.amin(1))).view(-1, 1, 1, 1)


def _smooth(ctx: Context, images: torch.Tensor, targets: torch.Tensor, name: str, options: dict[str, Any]) -> Result:
    check_options(name, options, ["samples", "noise", "seed"])
    samples = int(options.get("samples", 50))
    noise = float(options.get("noise", 0.15))
    if samples < 1 or noise < 0:
        raise CnnlabError(f"{name} needs samples >= 1 and noise >= 0 (got {samples}, {noise})")
    sigma = _noise_scale(images, noise)
    seed = options.get("seed")

    def make(i: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return images[i] + sigma[i] * image_noise(i, s, samples, tuple(images.shape[1:]), seed, images)

    def combine(i: torch.Tensor, s: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.stack([g, g * g])

    sums = sampled_gradients(ctx.forward, targets, len(images), samples, make, combine, ctx.max_batch) / samples
    mean, square = sums[0], sums[1]
    maps = {"smoothgrad": mean, "smoothgrad_sq": square, "vargrad": (square - mean * mean).clamp(min=0)}[name]
    return Result(maps, {"samples": samples, "noise": noise, "seed": options.get("seed", 0)})


@register("smoothgrad", "gradient")
def smoothgrad(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return the mean gradient over Gaussian-noised copies (Smilkov et al. 2017)."""
    return _smooth(ctx, images, targets, "smoothgrad", options)


@register("smoothgrad_sq", "gradient")
def smoothgrad_sq(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return the mean squared gradient over noised copies (Hooker et al. 2019)."""
    return _smooth(ctx, images, targets, "smoothgrad_sq", options)


@register("vargrad", "gradient")
def vargrad(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return the variance of the gradient over noised copies (Adebayo et al. 2018)."""
    return _smooth(ctx, images, targets, "vargrad", options)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Return images blurred by a Gaussian of `sigma` pixels (reflect padding), the kernel reaching 3 sigma."""
    radius = max(1, int(3 * sigma + 0.5))
    return batch_blur(images, torch.full((len(images),), float(sigma), device=images.device), 2 * radius + 1)


def baseline_of(images: torch.Tensor, baseline: str | float | torch.Tensor, options: dict[str, Any]) -> torch.Tensor:
    """Return the baseline images: black (0), blur (Gaussian, `sigma`), noise (uniform in `low`..`high`) or a tensor."""
    if isinstance(baseline, torch.Tensor):
        base = baseline.to(images.device, images.dtype)
        if base.shape[-3:] != images.shape[-3:]:
            raise CnnlabError(f"baseline of shape {tuple(base.shape)} does not match images {tuple(images.shape[1:])}")
        return base.expand_as(images)
    if isinstance(baseline, int | float):
        return torch.full_like(images, float(baseline))
    if baseline == "black":
        return torch.zeros_like(images)
    if baseline == "blur":
        return gaussian_blur(images, float(options.get("sigma", 5.0)))
    if baseline == "noise":
        low, high = float(options.get("low", 0.0)), float(options.get("high", 1.0))
        draw = torch.rand(images.shape, generator=seeded(options.get("seed"), images.device), device=images.device)
        return (low + (high - low) * draw).to(images.dtype)
    raise CnnlabError(f"unknown baseline {baseline!r}: choose black, blur, noise, a number or a tensor")


@register("integrated_gradients", "gradient")
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


@register("expected_gradients", "gradient")
def expected_gradients(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return E over references x' and alpha ~ U(0, 1) of (x - x') * grad at x' + alpha (x - x') (Erion et al. 2021)."""
    return _expected(ctx, images, targets, "expected_gradients", options, 0.0)


@register("gradient_shap", "gradient")
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


@register("deeplift", "gradient")
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
