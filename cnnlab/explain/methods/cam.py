"""The CAM family, this project's own code: CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM,
LayerCAM, Score-CAM, Eigen-CAM and guided Grad-CAM.

Every map is computed on the layer's grid from its activations A (N, K, h, w) and the gradient G
of the target score, kept on the device, and brought to the input grid in one of two ways:
- `upsample="resize"` (default, as Captum and grad-cam do): a bilinear resize, which assumes the
  layer's grid spans the whole image;
- `upsample="field"`: each unit placed at the centre of its receptive field (start and jump from
  cnnlab.inspect), interpolated bilinearly between centres. Networks of valid convolutions
  (LeNet-5) need it: LeNet's conv2 units sit at input pixels 6..24, which a resize stretches
  over 0..31.
No map is normalised here: a map's scale is part of the answer (rendering normalises for display).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.batching import pick, sampled_scores
from cnnlab.explain.kit.hooks import capture
from cnnlab.explain.kit.images import upsample
from cnnlab.explain.kit.options import Options, bound
from cnnlab.explain.kit.registry import check_options, register
from cnnlab.explain.kit.types import Context, Result

UPSAMPLE = ("resize", "field")


@dataclass(frozen=True)
class CamOptions(Options):
    """Options of the CAM family: how the layer's map is brought to the image."""

    upsample: str | None = bound(choices=UPSAMPLE)



def activations(ctx: Context, images: torch.Tensor, targets: torch.Tensor, *, gradients: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return the layer's activations (N, K, h, w) and the target score's gradient at them, chunked."""
    assert ctx.layer is not None
    acts, grads = [], []
    for start in range(0, len(images), ctx.max_batch):
        chunk = images[start:start + ctx.max_batch]
        with capture(ctx.layer, gradient=gradients) as record, torch.set_grad_enabled(gradients):
            logits = ctx.forward(chunk)
            if record.calls != 1:
                raise CnnlabError(f"layer {ctx.layer_name} runs {record.calls} times per forward pass: choose a layer that runs once")
            act = record.activation
            if act is None or act.ndim != 4:
                shape = None if act is None else tuple(act.shape)
                raise CnnlabError(f"layer {ctx.layer_name} gives {shape}, not a (N, C, H, W) map: choose a convolutional layer")
            if gradients:
                (grad,) = torch.autograd.grad(pick(logits, targets[start:start + ctx.max_batch]).sum(), act)
                grads.append(grad)
        acts.append(act.detach())
    return torch.cat(acts), (torch.cat(grads) if gradients else None)


def field_placed(ctx: Context, maps: torch.Tensor, size: tuple[int, int], channels: int) -> torch.Tensor:
    """Return layer-grid maps (N, 1, h, w) sampled at every input pixel through the layer's receptive-field centres."""
    from cnnlab.inspect.receptive import layer_receptive_field

    row = layer_receptive_field(ctx.model, ctx.layer_name or "", (channels, *size))
    if len(row.jump or ()) != 2:
        raise CnnlabError(f"no 2-D receptive-field geometry for layer {ctx.layer_name}: use upsample=resize")
    axes = []
    for axis, (length, jump, start) in enumerate(zip(size, row.jump, row.start, strict=True)):
        units = maps.shape[2 + axis]
        position = (torch.arange(length, device=maps.device, dtype=maps.dtype) - start) / jump  # in units
        axes.append(position * 2 / max(units - 1, 1) - 1 if units > 1 else torch.zeros_like(position))
    grid_y, grid_x = torch.meshgrid(axes[0], axes[1], indexing="ij")
    grid = torch.stack([grid_x, grid_y], dim=-1).expand(len(maps), -1, -1, -1)
    # Beyond the outermost centres the edge value holds (border padding), as a field's edge has no further unit.
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _finish(images: torch.Tensor, cam: torch.Tensor, options: dict[str, Any], *, relu: bool = True,
            ctx: Context | None = None) -> Result:
    """Return the map (N, h, w), rectified, on the layer grid and on the input grid."""
    cam = cam[:, None]
    if relu:
        cam = cam.clamp(min=0)
    how = options.get("upsample", "resize")
    if how == "resize":
        full = upsample(cam, tuple(images.shape[-2:]))
    elif how == "field" and ctx is not None:
        full = field_placed(ctx, cam, tuple(images.shape[-2:]), images.shape[1])
    else:
        raise CnnlabError(f"unknown upsample {how!r}: choose resize or field")
    return Result(full, {"upsample": how}, layer_maps=cam)


def _gradient_cam(name: str, weigh: Any) -> Any:
    def run(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
        check_options(name, options, ["upsample"])
        acts, grads = activations(ctx, images, targets)
        assert grads is not None
        return _finish(images, weigh(acts, grads), options, ctx=ctx)
    run.__doc__ = f"Return the {name} map of the layer, upsampled to the input."
    return run


def _grad_cam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    # Selvaraju et al. 2017, Eq. 1-2: channel weights are the spatially averaged gradients.
    weights = grads.mean(dim=(2, 3), keepdim=True)
    return (weights * acts).sum(1)


def _grad_cam_pp(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    # Chattopadhay et al. 2018, Eq. 19 with the exponential output (higher derivatives as powers of
    # the first); alphas are zero where the gradient is zero.
    g2, g3 = grads ** 2, grads ** 3
    total = acts.sum(dim=(2, 3), keepdim=True)
    alpha = torch.where(grads != 0, g2 / (2 * g2 + total * g3 + 1e-6), torch.zeros_like(grads))
    weights = (alpha * grads.clamp(min=0)).sum(dim=(2, 3), keepdim=True)
    return (weights * acts).sum(1)


def _xgrad_cam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    # Fu et al. 2020, Eq. 9: gradients weighted by the normalised activation.
    weights = (grads * acts / (acts.sum(dim=(2, 3), keepdim=True) + 1e-7)).sum(dim=(2, 3), keepdim=True)
    return (weights * acts).sum(1)


def _hires_cam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    # Draelos & Carin 2020: the element-wise product, not a spatial average, so the map is exact.
    return (grads * acts).sum(1)


def _layer_cam(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    # Jiang et al. 2021, Eq. 5: each location weighted by its own positive gradient.
    return (grads.clamp(min=0) * acts).sum(1)


register("gradcam", "cam", needs_layer=True, options=CamOptions)(_gradient_cam("gradcam", _grad_cam))
register("gradcam_pp", "cam", needs_layer=True, options=CamOptions)(_gradient_cam("gradcam_pp", _grad_cam_pp))
register("xgradcam", "cam", needs_layer=True, options=CamOptions)(_gradient_cam("xgradcam", _xgrad_cam))
register("hirescam", "cam", needs_layer=True, options=CamOptions)(_gradient_cam("hirescam", _hires_cam))
register("layercam", "cam", needs_layer=True, options=CamOptions)(_gradient_cam("layercam", _layer_cam))


def _classifier(model: nn.Module) -> nn.Linear:
    """Return the model's final Linear layer (the contract's get_classifier, else the last Linear)."""
    getter = getattr(model, "get_classifier", None)
    head = getter() if callable(getter) else None
    if not isinstance(head, nn.Linear):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        head = linears[-1] if linears else None
    if head is None:
        raise CnnlabError(f"CAM needs a final Linear layer after a global average pool, and {type(model).__name__} has none: use gradcam")
    return head


@register("cam", "cam", needs_layer=True, options=CamOptions)
def cam(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return the class activation map sum_k w_ck A_k (Zhou et al. 2016): the classifier's weights on the layer's maps."""
    check_options("cam", options, ["upsample"])
    acts, _ = activations(ctx, images, targets, gradients=False)
    head = _classifier(ctx.model)
    if head.in_features != acts.shape[1]:
        raise CnnlabError(f"CAM needs the layer's {acts.shape[1]} maps to feed the classifier's {head.in_features} inputs through a global pool: "
                          "use the last feature layer, or gradcam")
    weights = head.weight[targets].to(acts.dtype)  # (N, K)
    maps = torch.einsum("nk,nkhw->nhw", weights, acts)
    # CAM is exact only when a global average pool and that Linear are all that follow the layer:
    # then the map's mean plus the bias is the logit. Anything else gets an error, not a wrong map.
    with torch.no_grad():
        logits = torch.cat([ctx.forward(images[i:i + ctx.max_batch]) for i in range(0, len(images), ctx.max_batch)])
    expected = pick(logits, targets)
    bias = head.bias[targets] if head.bias is not None else 0.0
    if not torch.allclose(maps.mean(dim=(1, 2)) + bias, expected, rtol=1e-3, atol=1e-3 * float(expected.abs().max()) + 1e-4):
        raise CnnlabError(f"CAM needs a global average pool and one Linear layer after {ctx.layer_name}, and this model has more: use gradcam")
    return _finish(images, maps, options, relu=False, ctx=ctx)


@register("eigencam", "cam", needs_layer=True, options=CamOptions)
def eigencam(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return the projection of the layer's maps on their first principal component (Muhammad & Yeasin 2020)."""
    check_options("eigencam", options, ["upsample"])
    acts, _ = activations(ctx, images, targets, gradients=False)
    n, k, h, w = acts.shape
    points = acts.flatten(2).transpose(1, 2)  # (N, h*w, K): one K-vector per location
    points = (points - points.mean(dim=1, keepdim=True)).double()
    # The projection on the first right singular vector, p v1 = u1 s1, from the smaller Gram matrix:
    # a batched symmetric eigenproblem of min(h w, K) is much cheaper than the SVD.
    if h * w <= k:
        values, vectors = torch.linalg.eigh(points @ points.transpose(1, 2))  # (N, hw, hw), ascending
        projection = vectors[..., -1] * values[:, -1:].clamp(min=0).sqrt()
    else:
        _, vectors = torch.linalg.eigh(points.transpose(1, 2) @ points)  # (N, K, K)
        projection = (points @ vectors[..., -1:]).squeeze(-1)  # (N, h*w)
    # A singular vector's sign is arbitrary; take the one that agrees with the summed activation,
    # so the map's bright part is where the layer fires.
    agree = (projection * acts.sum(1).flatten(1).float()).sum(1, keepdim=True)
    projection = projection * torch.where(agree < 0, -1.0, 1.0)
    return _finish(images, projection.view(n, h, w).to(acts.dtype), options, ctx=ctx)


@register("scorecam", "cam", needs_layer=True, options=CamOptions)
def scorecam(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return Score-CAM: the maps weighted by a softmax of the target score of the image masked by each (Wang et al. 2020)."""
    check_options("scorecam", options, ["upsample"])
    acts, _ = activations(ctx, images, targets, gradients=False)
    n, k = acts.shape[:2]
    flat = acts.flatten(2)
    # A constant map normalises to an all-zero mask, so every such channel of every image scores the
    # same black image: score it once and skip them (dead ReLU channels are common in trained nets).
    live = flat.amax(2) > flat.amin(2)  # (N, K)
    pairs = live.nonzero()  # (P, 2): image, channel

    def make(i: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        # Each chunk upsamples only its own maps: (N, K, H, W) full-size masks are never held.
        # Bilinear with aligned corners, as grad-cam's UpsamplingBilinear2d, so the masks agree.
        mask = F.interpolate(acts[i, s][:, None], size=images.shape[-2:], mode="bilinear", align_corners=True)
        low = mask.flatten(1).amin(1).view(-1, 1, 1, 1)
        high = mask.flatten(1).amax(1).view(-1, 1, 1, 1)
        return images[i] * (mask - low) / (high - low + 1e-8)

    with torch.no_grad():
        black = pick(ctx.forward(torch.zeros_like(images[:1])).expand(n, -1), targets)  # (N,)
    # At least float32 for the softmax, and float64 when the model is: scores differing below float32's
    # resolution must not all round to one value.
    scores = black.to(torch.promote_types(black.dtype, torch.float32))[:, None].expand(n, k).clone()
    if len(pairs):
        scores[pairs[:, 0], pairs[:, 1]] = sampled_scores(ctx.forward, targets, 0, 0, make, ctx.max_batch, pairs=pairs)
    weights = scores.softmax(dim=1).to(acts.dtype)
    return _finish(images, (weights[..., None, None] * acts).sum(1), options, ctx=ctx)


@register("guided_gradcam", "cam", needs_layer=True, options=CamOptions)
def guided_gradcam(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return guided backprop times the upsampled Grad-CAM map (Selvaraju et al. 2017, Sec. 3.1)."""
    from cnnlab.explain.methods.gradient import guided_backprop

    check_options("guided_gradcam", options, ["upsample"])
    grad_cam = _gradient_cam("gradcam", _grad_cam)(ctx, images, targets, **options)
    guided = guided_backprop(ctx, images, targets).maps
    return Result(guided * grad_cam.maps, grad_cam.options, layer_maps=grad_cam.layer_maps)
