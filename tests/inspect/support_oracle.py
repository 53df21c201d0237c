"""An independent oracle for receptive fields: the support of an input gradient.

The field of one output unit is the set of input pixels its value depends on. In a linearised
copy of the network, that set is exactly where d(unit)/d(input) is non-zero:
- weights take their absolute values, normalised per output to sum 1 (so float64 neither
  overflows nor underflows on deep nets), biases are zero, and every normalisation module is
  replaced by the identity: with an all-ones input every activation is then positive;
- so ReLU-like activations are the identity on it; ReLU6 and Hardtanh, which clip, are replaced
  by the identity;
- max pooling becomes average pooling with the same window (max routes the gradient to one
  pixel), modules and functional calls alike;
- globally pooled values (SE gates, attention weights) are held constant (detached), as are
  normalisation statistics (the modules are the identity): the tracker's stated rules.
None of this reads cnnlab's tracer: it runs the network forward and backward on real tensors.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnlab.inspect.summary import LayerRow

_CLIPPING = (nn.ReLU6, nn.Hardtanh)
_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _to_average(pool: nn.Module) -> nn.Module:
    if isinstance(pool, nn.MaxPool2d):
        if pool.dilation not in (1, (1, 1)):
            raise ValueError("average pooling has no dilation: the oracle cannot linearise this pool")
        return nn.AvgPool2d(pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode, count_include_pad=True)
    if isinstance(pool, nn.MaxPool1d):
        return nn.AvgPool1d(pool.kernel_size, pool.stride, pool.padding, pool.ceil_mode, count_include_pad=True)
    if isinstance(pool, nn.AdaptiveMaxPool2d):
        return nn.AdaptiveAvgPool2d(pool.output_size)
    return pool


def linearise(model: nn.Module) -> nn.Module:
    """Return a float64 copy of `model` with the substitutions of this module's docstring."""
    net = copy.deepcopy(model).double().eval()
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (*_CLIPPING, *_NORMS)):
                setattr(parent, name, nn.Identity())
            else:
                setattr(parent, name, _to_average(child))
    with torch.no_grad():
        for module in net.modules():
            for pname, param in module.named_parameters(recurse=False):
                if pname == "bias":
                    param.zero_()
                elif param.ndim >= 2:  # conv / linear weights: (out, in, k...) -> a weighted average
                    magnitude = param.abs()
                    total = magnitude.flatten(1).sum(1).clamp_min(1e-300)
                    param.copy_(magnitude / total.view(-1, *([1] * (param.ndim - 1))))
                else:
                    param.copy_(param.abs())
    return net


class _Linearised(TorchFunctionMode):
    """Functional max pools become average pools; global pools are held constant."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        if func in (F.max_pool2d, torch.max_pool2d, F.max_pool2d_with_indices):
            x, kernel = args[0], args[1] if len(args) > 1 else kwargs["kernel_size"]
            stride = (args[2] if len(args) > 2 else kwargs.get("stride")) or kernel
            padding = args[3] if len(args) > 3 else kwargs.get("padding", 0)
            ceil = kwargs.get("ceil_mode", args[5] if len(args) > 5 else False)
            dilation = args[4] if len(args) > 4 else kwargs.get("dilation", 1)
            if dilation not in (1, (1, 1), [1, 1]):
                raise ValueError("average pooling has no dilation: the oracle cannot linearise this pool")
            return F.avg_pool2d(x, kernel, stride, padding, ceil_mode=ceil, count_include_pad=True)
        if func is F.adaptive_max_pool2d:
            func = F.adaptive_avg_pool2d
            args = args[:2]
        out = func(*args, **kwargs)
        pooling = func in (F.adaptive_avg_pool2d, torch._C._nn.adaptive_avg_pool2d) or getattr(func, "__name__", "") == "mean"
        x = args[0] if args else None
        if pooling and isinstance(out, torch.Tensor) and isinstance(x, torch.Tensor) and x.ndim >= 3:
            if out.numel() == x.shape[0] * x.shape[1]:  # one value per channel: a global pool
                return out.detach()
        return out


def gradient_support(
    model: nn.Module, input_size: tuple[int, ...], layers: list[str]
) -> dict[str, tuple[tuple[int, int], ...]]:
    """Return, per layer, the input span [low, high] per axis that its centre unit depends on."""
    net = linearise(model)
    modules = dict(net.named_modules())
    captured: dict[str, torch.Tensor] = {}
    def keep_first(name: str):  # noqa: ANN202
        def hook(_module: nn.Module, _args: tuple, out: torch.Tensor) -> None:
            captured.setdefault(name, out)  # returns None: a hook's return value would replace `out`
        return hook

    handles = [modules[name].register_forward_hook(keep_first(name)) for name in layers]
    x = torch.ones((1, *input_size), dtype=torch.float64, requires_grad=True)
    try:
        with _Linearised():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
    spans = {}
    for name in layers:
        out = captured[name]
        centre = tuple(s // 2 for s in out.shape[2:])
        unit = out[(0, slice(None), *centre)].sum()
        (grad,) = torch.autograd.grad(unit, x, retain_graph=True)
        support = grad[0].abs().sum(0) > 0  # (H, W)
        span = []
        for axis in range(support.ndim):
            other = tuple(a for a in range(support.ndim) if a != axis)
            hit = support.any(dim=other) if other else support
            where = torch.nonzero(hit).flatten()
            span.append((int(where.min()), int(where.max())))
        spans[name] = tuple(span)
    return spans


def analytic_span(row: LayerRow, input_size: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Return the span [low, high] per axis of a summary row's centre unit, clipped to the input."""
    span = []
    for field, jump, start, size, image in zip(
        row.receptive_field, row.jump, row.start, row.output_shape[1:], input_size[1:], strict=True
    ):
        centre = start + (size // 2) * jump
        low, high = centre - (field - 1) / 2, centre + (field - 1) / 2
        span.append((max(0, math.ceil(low)), min(image - 1, math.floor(high))))
    return tuple(span)


def fits(row: LayerRow, input_size: tuple[int, ...]) -> bool:
    """Whether the row's centre unit sees a field that lies wholly inside the input."""
    for field, jump, start, size, image in zip(
        row.receptive_field, row.jump, row.start, row.output_shape[1:], input_size[1:], strict=True
    ):
        centre = start + (size // 2) * jump
        if centre - (field - 1) / 2 < 0 or centre + (field - 1) / 2 > image - 1:
            return False
    return True
