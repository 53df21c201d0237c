"""The one interface of cnnlab.explain: `attribute(model, images, method, ...) -> Attribution`.

It resolves the targets (default: the predicted class), the layer, and the chunk size that fits a
memory budget; runs the method with the model preserved (eval, frozen, restored on exit) and every
hook inside a context manager; and returns tensors on the model's device. It stands above the
methods and imports them, so they register before any call.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import field, fields, make_dataclass
from typing import Any, get_type_hints

import torch
from torch import nn

import cnnlab.explain.methods  # noqa: F401  (importing the methods package registers every method)
from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.batching import not_logits, predict
from cnnlab.explain.kit.hooks import preserved, resolve_layer
from cnnlab.explain.kit.memory import auto_max_batch
from cnnlab.explain.kit.noise import TUNNELS, smooth
from cnnlab.explain.kit.options import Options
from cnnlab.explain.kit.registry import METHODS, Method
from cnnlab.explain.kit.types import Attribution, Context, Forward
from cnnlab.explain.methods.gradient import NoiseOptions
from cnnlab.runs.config import build


def smoothable() -> list[str]:
    """Return the methods a noise tunnel may wrap: gradient methods that draw no noise of their own."""
    return [m.name for m in METHODS.values() if m.family == "gradient" and not m.seeded]


def resolve(method: str) -> Method:
    """Return the registered method `method`, or the noise tunnel `TUNNEL:METHOD` over a gradient method.

    `smoothgrad:integrated_gradients` averages Integrated Gradients over noised copies (Smilkov et
    al. 2017), `smoothgrad_sq:` keeps the mean square and `vargrad:` the variance. The tunnel takes
    `samples`, `noise` and `seed`; the other options go to the method inside.
    """
    if method in METHODS:
        return METHODS[method]
    tunnel, _, inner = method.partition(":")
    if inner and tunnel in TUNNELS and inner in METHODS:
        if inner not in smoothable():
            raise CnnlabError(f"{method}: a noise tunnel wraps a gradient method that draws no noise of its own: "
                              f"choose {', '.join(smoothable())}")
        return _tunnel(tunnel, inner)
    import difflib

    close = difflib.get_close_matches(method, METHODS, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"choose from {', '.join(METHODS)}"
    raise CnnlabError(f"unknown explanation method {method!r}: {hint}")


@functools.cache
def _tunnel(tunnel: str, inner: str) -> Method:
    """Return the method `tunnel:inner`, its options the tunnel's and the method's in one dataclass (built once)."""
    base = METHODS[inner]
    hints = {**get_type_hints(NoiseOptions), **(get_type_hints(base.options) if base.options else {})}
    merged = [f for kind in (NoiseOptions, base.options) if kind for f in fields(kind)]
    options = make_dataclass(f"{tunnel}_{inner}_options", [(f.name, hints[f.name], field(default=None, metadata=f.metadata))
                                                           for f in merged], bases=(Options,), frozen=True)
    kind = TUNNELS[tunnel]
    return Method(f"{tunnel}:{inner}", smooth(base.run, kind), "gradient", False, kind != "mean" or base.absolute, options, True)


def list_methods(family: str | None = None) -> list[str]:
    """Return the registered method names, of one family if given."""
    return [m.name for m in METHODS.values() if family is None or m.family == family]


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
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise CnnlabError(not_logits(out, type(model).__name__))
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
    spec = resolve(method)
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
        logits = predict(forward, images, rows, type(model).__name__) if target is None else None
        if logits is not None and logits.ndim != 2:
            raise CnnlabError(not_logits(logits, type(model).__name__))
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
                       layer_name, None if result.layer_maps is None else result.layer_maps.detach(), extras,
                       spec.absolute)



def keys_of(method: str) -> frozenset[str]:
    """Return the option keys `method` takes (the fields of its registered options dataclass)."""
    kind = resolve(method).options
    return frozenset(f.name for f in fields(kind)) if kind else frozenset()


def method_options(method: str, pairs: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
    """Return the keyword options `method` takes from `pairs` (typed and bounded), plus its seed when it samples."""
    spec = resolve(method)
    taken = {k: v for k, v in pairs.items() if k in keys_of(method)}
    if spec.options is not None:
        try:
            taken = build(spec.options, taken, "", f"{method} option").given()
        except CnnlabError as error:
            message = str(error)
            raise CnnlabError(message if message.startswith(("unknown", method)) else f"{method} {message}") from None
    if spec.seeded and seed is not None:
        taken["seed"] = seed
    return taken


def check_pairs(methods: list[str] | tuple[str, ...], pairs: dict[str, Any]) -> None:
    """Raise one line for a key no chosen method takes, or a value a method refuses."""
    for key in pairs:
        if not any(key in keys_of(m) for m in methods):
            raise CnnlabError(f"no chosen method takes the option {key!r} ({', '.join(methods)}): check its spelling")
    for method in methods:
        method_options(method, pairs)
