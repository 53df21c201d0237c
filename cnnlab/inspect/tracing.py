"""Trace one forward pass at the level of dispatched ATen ops, attributed to the innermost module.

Counting at the op level (as `torch.utils.flop_counter.FlopCounterMode` does) means functional
calls inside a custom `forward` (`F.conv2d`, `@`) count too, and the receptive field is carried
on the tensors themselves by `cnnlab.inspect.fields`, op by op. Hooks exist only inside
`trace()` and are removed when it exits.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from cnnlab.inspect.fields import Field, FieldTracker
from cnnlab.inspect.shapes import meta_output

aten = torch.ops.aten

_CONV_OPS = {aten.convolution.default, aten._convolution.default}
_MM_OPS = {aten.mm.default: 0, aten.addmm.default: 1, aten.bmm.default: 0, aten.baddbmm.default: 1}


@dataclass
class ModuleCall:
    """What one call of one module did: its own MACs and element-wise ops, and its output."""

    name: str
    module: nn.Module
    order: int
    is_leaf: bool
    macs: int = 0
    elementwise_ops: int = 0
    functional_elements: int = 0  # new tensors made by ops in a container's own forward (adds, cats)
    input_tensor: torch.Tensor | None = None
    output: Any = None
    output_field: Field | None = None
    output_global: bool = False  # the output mixes every position (global pooling or after it)
    finished: int = -1  # order in which calls returned (a container returns after its children)


@dataclass
class Trace:
    """All module calls of one forward pass, in the order they started."""

    calls: list[ModuleCall] = field(default_factory=list)
    root_macs: int = 0
    root_elementwise_ops: int = 0


def _first_tensor(value: Any) -> torch.Tensor | None:
    leaves, _ = tree_flatten(value)
    return next((leaf for leaf in leaves if isinstance(leaf, torch.Tensor)), None)


def _new_elements(func: Any, args: tuple, out: Any) -> int:
    """Return the elements of the new tensors an op returns (views and in-place results alias)."""
    if not any(isinstance(a, torch.Tensor) for a in tree_flatten(args)[0]):
        return 0  # a factory (zeros, arange): not an activation of the input
    if any(r.alias_info is not None for r in func._schema.returns):
        return 0
    return sum(t.numel() for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor))


def _matmul_macs(func: Any, args: tuple) -> int:
    offset = _MM_OPS[func]
    a, b = args[offset], args[offset + 1]
    if a.ndim == 3:  # (B, M, K) @ (B, K, N)
        return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return a.shape[0] * a.shape[1] * b.shape[1]  # (M, K) @ (K, N)


def _conv_macs(args: tuple, out: torch.Tensor) -> int:
    x, weight, transposed = args[0], args[1], args[6]
    kernel = math.prod(weight.shape[2:])
    if transposed:  # weight (C_in, C_out/g, k...): every input pixel scatters into C_out/g * k
        return x.numel() * weight.shape[1] * kernel
    return out.numel() * weight.shape[1] * kernel  # weight (C_out, C_in/g, k...)


def _pool_window(func: Any, args: tuple, spatial_dims: int) -> int:
    kernel = list(args[1]) if len(args) > 1 else []
    kernel = kernel * spatial_dims if len(kernel) == 1 else kernel
    return math.prod(kernel) if kernel else 1


def _is_window_pool(name: str) -> bool:
    """Whether an op is a windowed max/avg pool (not adaptive, not max_unpool)."""
    return name.startswith(("max_pool", "avg_pool", "fractional_max_pool"))


def _is_adaptive_pool(name: str) -> bool:
    """Whether an op is an adaptive pool (any output size)."""
    return name.startswith(("adaptive_", "_adaptive_"))


def _elementwise_ops(func: Any, args: tuple, out: Any) -> int:
    """Return the element-wise op count of one non-matmul op (the rule the summary states)."""
    name = func.__name__
    out_tensor = _first_tensor(out)
    first_in = next((a for a in args if isinstance(a, torch.Tensor)), None)
    if out_tensor is None:
        return 0
    if _is_adaptive_pool(name):
        return first_in.numel() if first_in is not None else 0
    if _is_window_pool(name) and first_in is not None:
        return out_tensor.numel() * _pool_window(func, args, first_in.ndim - 2)
    if "norm" in name:
        return 2 * out_tensor.numel()  # normalise (subtract, scale) and the affine shift
    if name.startswith(("mean", "sum", "amax", "amin")) and first_in is not None:
        return first_in.numel()
    if torch.Tag.pointwise in func.tags or "softmax" in name:
        return out_tensor.numel()
    return 0


class _OpCounter(TorchDispatchMode):
    """Dispatch mode that charges every op to the module call on top of the stack."""

    def __init__(self, stack: list[ModuleCall], trace: Trace, fields: FieldTracker) -> None:
        super().__init__()
        self.stack = stack
        self.trace = trace
        self.fields = fields

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # as in MetaShapes: no torch._dynamo import (2 s) for a trace never compiled

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = meta_output(func, args, kwargs)
        if out is NotImplemented:
            out = func(*args, **kwargs)
        if func in _CONV_OPS:
            macs, ops = _conv_macs(args, out), 0
        elif func in _MM_OPS:
            macs, ops = _matmul_macs(func, args), 0
        else:
            macs, ops = 0, _elementwise_ops(func, args, out)
        if self.stack:
            self.stack[-1].macs += macs
            self.stack[-1].elementwise_ops += ops
            if not self.stack[-1].is_leaf:
                self.stack[-1].functional_elements += _new_elements(func, args, out)
        else:
            self.trace.root_macs += macs
            self.trace.root_elementwise_ops += ops
        self.fields.update(func, args, kwargs, out)
        return out


@contextmanager
def trace(model: nn.Module, *, root_name: str = "") -> Iterator[tuple[Trace, FieldTracker, TorchDispatchMode]]:
    """Yield (trace, field tracker, dispatch mode) while hooks record every module call of `model`.

    The caller enters the dispatch mode around the forward pass; every hook is removed on exit,
    also when the forward pass raises.
    """
    result = Trace()
    fields = FieldTracker()
    stack: list[ModuleCall] = []
    handles = []
    counter = _OpCounter(stack, result, fields)
    finish_counter = itertools.count()

    def make_hooks(name: str, module: nn.Module) -> tuple[Any, Any]:
        is_leaf = next(module.children(), None) is None

        def pre_hook(mod: nn.Module, args: tuple) -> None:
            call = ModuleCall(name or root_name, mod, len(result.calls), is_leaf)
            call.input_tensor = _first_tensor(args)
            result.calls.append(call)
            stack.append(call)

        def post_hook(mod: nn.Module, args: tuple, output: Any) -> None:
            call = stack.pop()
            call.finished = next(finish_counter)
            call.output = output
            out_tensor = _first_tensor(output)
            if out_tensor is not None:
                call.output_field, call.output_global = fields.field(out_tensor)

        return pre_hook, post_hook

    try:
        for name, module in model.named_modules():
            pre, post = make_hooks(name, module)
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(post))
        yield result, fields, counter
    finally:
        for handle in handles:
            handle.remove()
