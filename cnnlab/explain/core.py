"""The one interface of cnnlab.explain: `attribute(model, images, method, ...) -> Attribution`.

It resolves the targets (default: the predicted class), the layer, and the chunk size that fits a
memory budget; runs the method with the model preserved (eval, frozen, restored on exit) and every
hook inside a context manager; and returns tensors on the model's device.

The batching helpers below are what every method is built on: they flatten (image, sample) pairs
into one index, so Integrated Gradients steps, SmoothGrad draws, masks and windows of several
images share a forward pass, chunked to `max_batch` rows.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain.hooks import preserved, resolve_layer

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Attribution:
    """Maps of one method for a batch: on the input grid, and on the layer's grid for layer methods."""

    maps: torch.Tensor  # (N, C, H, W) per input channel, or (N, 1, H, W) for layer and superpixel methods
    method: str
    options: dict[str, Any]  # the resolved options, defaults included
    targets: torch.Tensor  # int64 (N,): the class each map explains
    seconds: float
    layer: str | None = None
    layer_maps: torch.Tensor | None = None  # (N, 1, h, w) on the layer's grid, before upsampling
    extras: dict[str, Any] = field(default_factory=dict)

    def heatmap(self) -> torch.Tensor:
        """Return one map per image (N, H, W): channels summed (saliency and its kin: their maximum)."""
        if self.maps.shape[1] == 1:
            return self.maps[:, 0]
        if self.method in ABSOLUTE_METHODS:
            return self.maps.amax(dim=1)
        return self.maps.sum(dim=1)

    def numpy(self) -> Any:
        """Return the heat maps as a float32 numpy array (N, H, W) on the host."""
        return self.heatmap().detach().float().cpu().numpy()


#: Methods whose maps are magnitudes; their heat map takes the channel maximum (Simonyan et al. 2014).
ABSOLUTE_METHODS = {"saliency", "smoothgrad_sq", "vargrad"}


@dataclass(frozen=True)
class Context:
    """What a method needs besides its options: the model, its layer, the chunk size, the device."""

    model: nn.Module
    forward: Forward
    max_batch: int
    num_classes: int
    layer_name: str | None = None
    layer: nn.Module | None = None


@dataclass(frozen=True)
class Result:
    """What a method returns to `attribute`."""

    maps: torch.Tensor
    options: dict[str, Any]
    layer_maps: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A registered method: its function, its family and whether it needs a layer."""

    name: str
    run: Callable[..., Result]
    family: str  # gradient, cam, perturbation, lrp
    needs_layer: bool = False


METHODS: dict[str, Method] = {}


def register(name: str, family: str, *, needs_layer: bool = False) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Return a decorator that registers a method under `name` (names are unique)."""
    def add(run: Callable[..., Result]) -> Callable[..., Result]:
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        METHODS[name] = Method(name, run, family, needs_layer)
        return run
    return add


def list_methods(family: str | None = None) -> list[str]:
    """Return the registered method names, of one family if given."""
    _ensure_loaded()
    return [m.name for m in METHODS.values() if family is None or m.family == family]


def _ensure_loaded() -> None:
    from cnnlab.explain import cam, gradient, lrp, perturbation  # noqa: F401  (they register themselves)


# --- the memory budget -------------------------------------------------------------------------


def _free_bytes(device: torch.device) -> int:
    """Return the bytes this process may still use on `device` (CUDA: free memory; CPU: available RAM)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def bytes_per_image(forward: Forward, image: torch.Tensor) -> int:
    """Return the bytes one image keeps for backward (the tensors autograd saves), plus its logits."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    x = image[:1].detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward(x)
    del out
    return max(total, image[:1].numel() * image.element_size())


_PER_IMAGE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached_bytes_per_image(forward: Forward, image: torch.Tensor) -> int:
    """Return bytes_per_image, remembered per model, input shape and dtype (a probe is a batch-1 forward)."""
    owner = getattr(forward, "__self__", forward)
    key = (tuple(image.shape[1:]), image.dtype, image.device.type)
    try:
        known = _PER_IMAGE.setdefault(owner, {})
    except TypeError:  # not weak-referenceable: probe every time
        return bytes_per_image(forward, image)
    if key not in known:
        known[key] = bytes_per_image(forward, image)
    return known[key]


def auto_max_batch(forward: Forward, image: torch.Tensor, fraction: float = 0.25, cap: int = 512) -> int:
    """Return the rows per chunk that keep one forward+backward within `fraction` of the free memory."""
    per_image = _cached_bytes_per_image(forward, image)
    # Backward allocates about as much again as the forward saved; 2x is the margin for it.
    fit = int(_free_bytes(image.device) * fraction // (2 * per_image))
    return max(1, min(cap, fit))


# --- batched primitives every method is built on -----------------------------------------------


def pick(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Return logits[i, targets[i]] for each row (B,)."""
    return logits.gather(1, targets.view(-1, 1)).squeeze(1)


def sampled_gradients(forward: Forward, targets: torch.Tensor, count: int, samples: int,
                      make: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                      combine: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                      max_batch: int) -> torch.Tensor:
    """Return sum over samples of combine(i, s, x, grad) per image, as (K, N, ...).

    `make(i, s)` builds the inputs of image indices i and sample indices s (both (B,)); the target
    score's gradient at them is passed to `combine`, which returns (K, B, ...) contributions. All
    (image, sample) pairs are flattened and run `max_batch` at a time.
    """
    total = count * samples
    device = targets.device
    result: torch.Tensor | None = None
    for start in range(0, total, max_batch):
        flat = torch.arange(start, min(total, start + max_batch), device=device)
        i, s = flat // samples, flat % samples
        x = make(i, s).detach().requires_grad_(True)
        with torch.enable_grad():
            logits = forward(x)
            score = pick(logits, targets[i])
            (grad,) = torch.autograd.grad(score.sum(), x)
        part = combine(i, s, x.detach(), grad)
        if result is None:
            result = torch.zeros((part.shape[0], count, *part.shape[2:]), dtype=part.dtype, device=device)
        result.index_add_(1, i, part)
    assert result is not None
    return result


@torch.no_grad()
def sampled_scores(forward: Forward, targets: torch.Tensor, count: int, samples: int,
                   make: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], max_batch: int,
                   score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                   pairs: torch.Tensor | None = None) -> torch.Tensor:
    """Return the target score (N, S) of every (image, sample) input `make(i, s)` builds, chunked.

    With `pairs` (P, 2) of (image, sample) indices, only those are scored, returned as (P,).
    """
    device = targets.device
    total = count * samples if pairs is None else len(pairs)
    out: torch.Tensor | None = None
    for start in range(0, total, max_batch):
        if pairs is None:
            flat = torch.arange(start, min(total, start + max_batch), device=device)
            i, s = flat // samples, flat % samples
        else:
            i, s = pairs[start:start + max_batch, 0], pairs[start:start + max_batch, 1]
        logits = forward(make(i, s))
        part = pick(logits, targets[i]) if score is None else score(logits, targets[i])
        if out is None:
            # The scores keep the logits' dtype: occlusion and RISE take differences of scores that a
            # float64 model resolves and float32 would round to zero.
            out = torch.empty(total, device=device, dtype=part.dtype)
        out[start:start + len(i)] = part
    if out is None:  # nothing to score
        out = torch.empty(total, device=device)
    return out.view(count, samples) if pairs is None else out


@torch.no_grad()
def predict(forward: Forward, images: torch.Tensor, max_batch: int) -> torch.Tensor:
    """Return the logits of `images`, chunked."""
    return torch.cat([forward(images[i:i + max_batch]) for i in range(0, len(images), max_batch)])


# --- the interface -----------------------------------------------------------------------------


def _check_images(images: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise CnnlabError(f"images must be a float tensor (N, C, H, W), got {shape}: add a batch axis with images[None]")
    if not images.is_floating_point():
        raise CnnlabError(f"images are {images.dtype}: convert them to float and normalise them as the model expects")
    return images.to(device=device, dtype=dtype if dtype.is_floating_point else images.dtype)


_MISFIT = ("size", "shape", "channels", "mat1 and mat2", "dimension", "Expected", "expected")


@contextmanager
def _misfit(model: nn.Module, images: torch.Tensor) -> Iterator[None]:
    """Turn the model's own complaint about the input's shape into one line naming the fix."""
    try:
        yield
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        if not any(word in first for word in _MISFIT):
            raise
        raise CnnlabError(f"images of shape {tuple(images.shape[1:])} do not fit {type(model).__name__} ({first}): "
                          "resize them to the model's input size and channels") from None


def _classes(model: nn.Module, forward: Forward, images: torch.Tensor) -> int:
    """Return the number of logits: from the classifier when the model names it, else one image's forward."""
    head = getattr(model, "get_classifier", None)
    layer = head() if callable(head) else None
    if isinstance(layer, nn.Linear):
        return layer.out_features
    with torch.no_grad():
        out = forward(images[:1])
    if out.ndim != 2:
        raise CnnlabError(f"{type(model).__name__} returns {tuple(out.shape)}, not (N, classes) logits: explain a classifier")
    return out.shape[1]


def _targets(target: int | Sequence[int] | torch.Tensor, count: int, classes: int, device: torch.device) -> torch.Tensor:
    targets = torch.as_tensor(target, device=device).long().reshape(-1)
    if targets.numel() == 1:
        targets = targets.expand(count).clone()
    if targets.numel() != count:
        raise CnnlabError(f"{targets.numel()} targets for {count} images: give one target, or one per image")
    bad = targets[(targets < 0) | (targets >= classes)]
    if bad.numel():
        raise CnnlabError(f"target {int(bad[0])} is out of range: the model has {classes} classes (0-{classes - 1})")
    return targets


def default_layer(model: nn.Module) -> str:
    """Return the layer layer methods use by default: the last stage of `feature_layers()`, else the last conv."""
    stages = getattr(model, "feature_layers", None)
    if callable(stages) and stages():
        return stages()[-1]
    convs = [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]
    if not convs:
        raise CnnlabError(f"{type(model).__name__} has no convolution to explain at: pass layer=NAME")
    return convs[-1]


def _placement(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Return the device and floating dtype of the model's first parameter (or buffer)."""
    for tensors in (model.parameters(), model.buffers()):
        for tensor in tensors:
            if tensor.is_floating_point():
                return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def attribute(model: nn.Module, images: torch.Tensor, method: str, target: int | Sequence[int] | torch.Tensor | None = None,
              layer: str | nn.Module | None = None, *, max_batch: int | None = None, **options: Any) -> Attribution:
    """Return the `method` attribution of `images` for `target` (default: the predicted class)."""
    _ensure_loaded()
    if method not in METHODS:
        import difflib

        close = difflib.get_close_matches(method, METHODS, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"choose from {', '.join(METHODS)}"
        raise CnnlabError(f"unknown explanation method {method!r}: {hint}")
    spec = METHODS[method]
    if max_batch is not None and max_batch < 1:
        raise CnnlabError(f"max_batch must be >= 1, got {max_batch}")
    device, dtype = _placement(model)
    images = _check_images(images, device, dtype)
    start = time.perf_counter()
    with preserved(model), _misfit(model, images):
        forward = model.__call__
        # The memory probe (once per model and input shape) when no chunk size is given.
        rows = max_batch or auto_max_batch(forward, images)
        # The logits pass only when the targets are the predictions; given targets cost no extra pass.
        logits = predict(forward, images, rows) if target is None else None
        if logits is not None and logits.ndim != 2:
            raise CnnlabError(f"{type(model).__name__} returns {tuple(logits.shape)}, not (N, classes) logits: explain a classifier")
        classes = logits.shape[1] if logits is not None else _classes(model, forward, images)
        targets = logits.argmax(dim=1) if logits is not None else _targets(target, len(images), classes, device)
        layer_name, layer_module = None, None
        if spec.needs_layer or layer is not None:
            layer_name, layer_module = resolve_layer(model, layer if layer is not None else default_layer(model))
        context = Context(model, forward, rows, classes, layer_name, layer_module)
        result = spec.run(context, images, targets, **options)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    extras = dict(result.extras)
    if logits is not None:
        extras["probabilities"] = logits.softmax(1).gather(1, targets.view(-1, 1)).squeeze(1)
    return Attribution(result.maps.detach(), method, {"max_batch": rows, **result.options}, targets, seconds,
                       layer_name, None if result.layer_maps is None else result.layer_maps.detach(), extras)


def check_options(method: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    """Raise a one-line error when `options` holds a key `method` does not take."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise CnnlabError(f"{method} takes no option {unknown[0]!r}: its options are {', '.join(allowed) or 'none'}")


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Return (N, 1, h, w) maps resized bilinearly to `size` (align_corners=False, as Captum's interpolate)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return torch.nn.functional.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def gauss_legendre(steps: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return Gauss-Legendre nodes in (0, 1) and their weights (summing to 1) for `steps` points."""
    import numpy as np

    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (torch.tensor((nodes + 1) / 2, device=device, dtype=torch.float32),
            torch.tensor(weights / 2, device=device, dtype=torch.float32))


def riemann(steps: int, device: torch.device, rule: str = "trapezoid") -> tuple[torch.Tensor, torch.Tensor]:
    """Return Riemann nodes in [0, 1] and weights summing to 1: left, right, middle or trapezoid."""
    if rule == "trapezoid":
        if steps < 2:
            raise CnnlabError("the trapezoid rule needs steps >= 2")
        nodes = torch.linspace(0, 1, steps, device=device)
        weights = torch.full((steps,), 1 / (steps - 1), device=device)
        weights[0] = weights[-1] = 0.5 / (steps - 1)
        return nodes, weights
    offset = {"left": 0.0, "right": 1.0, "middle": 0.5}.get(rule)
    if offset is None:
        raise CnnlabError(f"unknown Riemann rule {rule!r}: choose left, right, middle or trapezoid")
    return (torch.arange(steps, device=device) + offset) / steps, torch.full((steps,), 1 / steps, device=device)


def image_noise(i: torch.Tensor, s: torch.Tensor, samples: int, shape: tuple[int, ...], seed: int | None,
                like: torch.Tensor, kind: str = "normal") -> torch.Tensor:
    """Return noise (B, *shape) for (image i, sample s) pairs, drawn chunk by chunk.

    Each image has its own seeded stream of `samples` draws, so the noise of a pair does not depend
    on the chunk size or the batch it came in, and no (samples, N, ...) tensor is ever held.
    """
    out = torch.empty((len(i), *shape), device=like.device, dtype=like.dtype)
    for image in torch.unique(i).tolist():
        rows = (i == image).nonzero().squeeze(1)
        generator = torch.Generator(device=like.device).manual_seed((0 if seed is None else int(seed)) * 1_000_003 + image)
        size = (samples, *shape)  # always all of them: a shorter draw need not be a prefix of a longer one
        draws = (torch.randn(size, generator=generator, device=like.device, dtype=like.dtype) if kind == "normal"
                 else torch.rand(size, generator=generator, device=like.device, dtype=like.dtype))
        out[rows] = draws[s[rows]]
    return out


def seeded(seed: int | None, device: torch.device) -> torch.Generator:
    """Return a generator on `device` seeded with `seed` (0 when None), so a call repeats exactly."""
    return torch.Generator(device=device).manual_seed(0 if seed is None else int(seed))


__all__ = ["Attribution", "attribute", "default_layer", "list_methods"]
