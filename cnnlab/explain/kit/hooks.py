"""Hooks and the guarantees around them: every hook lives inside a context manager, and the
user's model leaves every explain call as it came in (mode, `requires_grad`, parameters, in-place
flags). Nothing here edits a module: activations are captured by forward hooks removed on exit,
and ReLU backward rules are swapped by a TorchFunctionMode that only exists inside its `with`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnlab.devices import device_of
from cnnlab.errors import CnnlabError

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
               "_state_dict_hooks", "_load_state_dict_pre_hooks")


def hook_count(model: nn.Module) -> int:
    """Return the number of module hooks registered anywhere in `model`."""
    return sum(len(getattr(module, name, {}) or {}) for module in model.modules() for name in _HOOK_DICTS)


def verify_no_hooks(model: nn.Module) -> None:
    """Raise AssertionError when any module of `model` still holds a hook (the tests' end check)."""
    left = [(name, kind) for name, module in model.named_modules() for kind in _HOOK_DICTS if getattr(module, kind, None)]
    assert not left, f"hooks left on the model: {left[:5]}"


def model_device(model: nn.Module) -> torch.device:
    """Return the device of the model's first parameter, or the CPU for a model without any."""
    return device_of(model)


@contextmanager
def preserved(model: nn.Module) -> Iterator[nn.Module]:
    """Yield `model` in eval mode with frozen parameters; restore its modes and flags on exit.

    Only what differs is touched, both ways: an eval model with frozen weights costs one pass.
    """
    modules = list(model.modules())
    training = [m for m in modules if m.training]
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        if training:
            model.eval()  # through train(False), so modules that override it are honoured
        for parameter in trainable:
            parameter.requires_grad_(False)
        yield model
    finally:
        for module in training:
            module.training = True
        for parameter in trainable:
            parameter.requires_grad_(True)


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> tuple[str, nn.Module]:
    """Return (name, module) for a dotted layer name or a module of `model`, or a one-line error listing close names."""
    names = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        for name, module in names.items():
            if module is layer:
                return name, module
        raise CnnlabError(f"the layer {type(layer).__name__} given is not part of the model: pass one of its modules or its dotted name")
    if layer in names and layer != "":
        return layer, names[layer]
    import difflib

    close = difflib.get_close_matches(layer, [n for n in names if n], n=5, cutoff=0.5)
    hint = f"close matches: {', '.join(close)}" if close else "list the names with `cnnlab summary MODEL`"
    raise CnnlabError(f"the model has no layer {layer!r}: {hint}")


@dataclass
class Captured:
    """The activation of one layer in the last forward pass, kept in the autograd graph."""

    activation: torch.Tensor | None = None
    calls: int = 0


@contextmanager
def capture(module: nn.Module, *, gradient: bool = False) -> Iterator[Captured]:
    """Yield a record of `module`'s output during the `with` block; the forward hook goes on exit.

    With `gradient`, the record is a fresh leaf that requires grad: the backward of the target
    score stops there, and the layers before it run without building a graph at all.
    """
    record = Captured()

    def keep(_module: nn.Module, _inputs: tuple, output: object) -> object:
        tensor = output[0] if isinstance(output, tuple | list) else output
        if not isinstance(tensor, torch.Tensor):
            raise CnnlabError(f"layer {type(_module).__name__} returns {type(output).__name__}, not a tensor: choose a layer whose output is a feature map")
        leaf = tensor.detach().requires_grad_(gradient and tensor.is_floating_point())
        record.activation = leaf
        record.calls += 1
        # The rest of the network gets a copy, so an in-place op after the layer (`out += identity`,
        # ReLU(inplace=True)) changes the copy and never the captured activation.
        copy = leaf.clone()
        if isinstance(output, tuple | list):
            return type(output)([copy, *output[1:]])
        return copy

    handle = module.register_forward_hook(keep)
    try:
        yield record
    finally:
        handle.remove()


class _Reached(Exception):
    """Raised by `forward_to`'s hook once every layer it waits for has run: the rest of the network is skipped."""


def forward_to(model: nn.Module, layers: list[str], images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Return the outputs of `layers` for `images`, kept in the autograd graph, running the model only as far as they need.

    Each output is a clone, so an in-place op later in the network (`out += identity`) cannot change it.
    The hooks are removed before this returns.
    """
    modules = [resolve_layer(model, layer) for layer in layers]
    outputs: dict[str, torch.Tensor] = {}

    def keeper(name: str) -> Callable:
        def keep(module: nn.Module, _inputs: tuple, output: object) -> None:
            tensor = output[0] if isinstance(output, tuple | list) else output
            if not isinstance(tensor, torch.Tensor):
                raise CnnlabError(f"layer {name} returns {type(output).__name__}, not a tensor: choose a layer whose output is a feature map")
            outputs.setdefault(name, tensor.clone())
            if len(outputs) == len(modules):
                raise _Reached
        return keep

    handles = [module.register_forward_hook(keeper(name)) for name, module in modules]
    try:
        model(images)
    except _Reached:
        pass
    finally:
        for handle in handles:
            handle.remove()
    missing = [name for name, _ in modules if name not in outputs]
    if missing:
        raise CnnlabError(f"layer {missing[0]} did not run in the forward pass: choose a layer the model calls")
    return outputs


F = torch.nn.functional


class _ReluRule(torch.autograd.Function):
    """ReLU (or ReLU6) whose backward is guided backprop's or the deconvnet's instead of the gradient."""

    @staticmethod
    def forward(ctx: object, x: torch.Tensor, mode: str, top: float | None) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.mode, ctx.top = mode, top
        return x.clamp(min=0) if top is None else x.clamp(0, top)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        if ctx.mode == "guided":  # Springenberg et al. 2015: the forward mask and a positive gradient
            active = x > 0 if ctx.top is None else (x > 0) & (x < ctx.top)
            return grad.clamp(min=0) * active, None, None
        return grad.clamp(min=0), None, None  # Zeiler & Fergus 2014: the backward signal rectified, no forward mask


_RELUS = {F.relu, torch.relu, torch.Tensor.relu}


@dataclass
class _ReluBackward(TorchFunctionMode):
    mode: str = "guided"
    seen: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> object:
        kwargs = kwargs or {}
        if func in _RELUS:
            self.seen.append(1)
            return _ReluRule.apply(args[0], self.mode, None)
        if func is F.relu6 or (func is F.hardtanh and _hardtanh_bounds(args, kwargs) == (0.0, 6.0)):
            self.seen.append(1)
            return _ReluRule.apply(args[0], self.mode, 6.0)
        return func(*args, **kwargs)


def _hardtanh_bounds(args: tuple, kwargs: dict) -> tuple[float, float]:
    low = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
    high = args[2] if len(args) > 2 else kwargs.get("max_val", 1.0)
    return float(low), float(high)


@contextmanager
def relu_backward(mode: str) -> Iterator[list[int]]:
    """Run the block with every ReLU's (and ReLU6's) backward replaced by guided backprop's (`guided`) or the deconvnet's.

    An explicit in-place `x.relu_()` keeps its plain gradient (it is left as it is written).
    """
    rule = _ReluBackward(mode)
    with rule:
        yield rule.seen
