"""Trace one forward pass at the level of dispatched ATen ops, attributed to the innermost module.

Counting at the op level (as `torch.utils.flop_counter.FlopCounterMode` does) means functional
calls inside a custom `forward` (`F.conv2d`, `@`) count too, and the receptive field is carried
on the tensors themselves, so residual adds and concatenations take the largest field of their
inputs. Hooks exist only inside `trace()` and are removed when it exits.
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
from torch.utils.weak import WeakTensorKeyDictionary

from cnnlab.arithmetic import INPUT_FIELD, ReceptiveField, next_receptive_field

aten = torch.ops.aten
Field = tuple[ReceptiveField, ...]  # one entry per spatial dimension

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
    input_tensor: torch.Tensor | None = None
    output: Any = None
    output_field: Field | None = None
    history_start: int = 0  # index into the field tracker's history when the call began
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


def _window_args(func: Any, args: tuple, spatial: int) -> tuple[list, list, list, list] | None:
    """Return (kernel, stride, padding, dilation) of a pooling op, each one per spatial dim."""
    name = func.__name__
    if "adaptive" in name:
        return None

    def per_dim(value: Any, default: int) -> list[int]:
        value = list(value) if value is not None and len(value) else [default]
        return value * spatial if len(value) == 1 else value

    kernel = per_dim(args[1], 1)
    stride = per_dim(args[2] if len(args) > 2 else None, 0)
    stride = [k if s == 0 else s for k, s in zip(kernel, stride, strict=True)]
    padding = per_dim(args[3] if len(args) > 3 else None, 0)
    dilation = [1] * spatial
    if "max_pool" in name and len(args) > 4:
        dilation = per_dim(args[4], 1)
    return kernel, stride, padding, dilation


class _FieldTracker:
    """Carries a receptive field on every spatial tensor through the ops of a forward pass."""

    def __init__(self) -> None:
        self.fields: WeakTensorKeyDictionary = WeakTensorKeyDictionary()
        self.history: list[tuple[int, tuple[int, ...], Field]] = []  # (ndim, spatial shape, field)

    def get(self, tensor: torch.Tensor) -> Field | None:
        """Return the field carried by `tensor`, or None."""
        return self.fields.get(tensor)

    def set(self, tensor: torch.Tensor, value: Field | None) -> None:
        """Attach `value` to `tensor` when it has one entry per spatial dimension."""
        if value is not None and tensor.ndim == len(value) + 2:
            self.fields[tensor] = value
            self.history.append((tensor.ndim, tuple(tensor.shape[2:]), value))

    def recover(
        self, tensor: torch.Tensor, since: int, module_input: torch.Tensor | None
    ) -> Field | None:
        """Give `tensor` the newest field set since history index `since` with its spatial shape.

        Ops that fold space into the batch (a Linear on a channels-last map, as in ConvNeXt)
        lose the field; the module's output then inherits the last field its call produced
        on a map of the same size, which is what those ops preserve.
        """
        key = (tensor.ndim, tuple(tensor.shape[2:]))
        for ndim, shape, value in reversed(self.history[since:]):
            if (ndim, shape) == key:
                self.set(tensor, value)
                return value
        # Nothing of that size inside the call (LayerNorm2d permutes to channels-last and back):
        # a module that keeps the spatial size keeps its input's field.
        if module_input is not None and (module_input.ndim, tuple(module_input.shape[2:])) == key:
            value = self.get(module_input)
            self.set(tensor, value)
            return value
        return None

    def seed(self, tensor: torch.Tensor) -> None:
        """Mark `tensor` as the input image: a field of one pixel, jump one, per dimension."""
        self.set(tensor, (INPUT_FIELD,) * (tensor.ndim - 2))

    def update(self, func: Any, args: tuple, out: Any) -> None:
        """Give the output of one dispatched op the field its inputs and the op imply."""
        out_tensor = _first_tensor(out)
        if out_tensor is None:
            return
        inputs = [a for a in tree_flatten(args)[0] if isinstance(a, torch.Tensor)]
        with_field = [(t, self.get(t)) for t in inputs if self.get(t) is not None]
        if not with_field:
            return
        source, source_field = with_field[0]
        name = func.__name__
        spatial = source.ndim - 2

        if func in _CONV_OPS and args[6]:
            return  # a transposed conv up-samples: the field is no longer a grid of whole pixels
        if func in _CONV_OPS:
            weight, stride, padding, dilation = args[1], args[3], args[4], args[5]
            fields = tuple(
                next_receptive_field(f, k, s, p, d)
                for f, k, s, p, d in zip(
                    source_field, weight.shape[2:], stride, padding, dilation, strict=True
                )
            )
            self.set(out_tensor, fields)
        elif _is_window_pool(name) and not name.startswith("fractional"):
            kernel, stride, padding, dilation = _window_args(func, args, spatial)
            fields = tuple(
                next_receptive_field(f, k, s, p, d)
                for f, k, s, p, d in zip(source_field, kernel, stride, padding, dilation, strict=True)
            )
            self.set(out_tensor, fields)
        elif _is_adaptive_pool(name) or name.startswith(("mean", "amax", "sum")):
            # A global or adaptive reduction: the widest cell sees ceil(i/o) positions.
            in_sizes, out_sizes = source.shape[2:], out_tensor.shape[2:]
            if out_tensor.ndim != source.ndim:
                return
            fields = tuple(
                next_receptive_field(f, -(-i // o), max(i // o, 1), 0, 1)
                for f, i, o in zip(source_field, in_sizes, out_sizes, strict=True)
            )
            self.set(out_tensor, fields)
        elif name.startswith(("constant_pad_nd", "reflection_pad", "replication_pad")):
            flat = list(args[1])
            before = [flat[2 * i] for i in range(len(flat) // 2)][::-1]  # F.pad lists the last dim first
            before = [0] * (spatial - len(before)) + before
            self.set(out_tensor, _shift(source_field, before))
        elif name.startswith("upsample") or "interp" in name:
            return  # fractional jumps: the grid recurrence no longer applies
        elif name.startswith("unsqueeze") and out_tensor.ndim == source.ndim + 1:
            dim = args[1] if args[1] >= 0 else args[1] + out_tensor.ndim
            if dim >= 2:
                fields = list(source_field)
                fields.insert(dim - 2, INPUT_FIELD)
                self.set(out_tensor, tuple(fields))
        elif name.startswith("squeeze") and out_tensor.ndim == source.ndim - 1 and len(args) > 1:
            dims = args[1] if isinstance(args[1], list | tuple) else [args[1]]
            dims = [d if d >= 0 else d + source.ndim for d in dims]
            if all(d >= 2 for d in dims):
                fields = [f for i, f in enumerate(source_field) if i + 2 not in dims]
                self.set(out_tensor, tuple(fields))
        elif func is aten.copy_.default:
            self._copy_into_view(args[0], source_field)
        else:
            # Element-wise ops and concatenation along channels: the widest field among inputs of
            # the output's own size wins. Broadcast inputs (an SE gate of shape (B, C, 1, 1)) are
            # side branches, not the main path, and do not count.
            same_size = [
                f for t, f in with_field
                if t.ndim == out_tensor.ndim and t.shape[2:] == out_tensor.shape[2:]
            ]
            if same_size:
                self.set(out_tensor, max(same_size, key=_field_size))

    def _copy_into_view(self, target: torch.Tensor, source_field: Field) -> None:
        """A copy into a slice of a fresh tensor (circular padding): give the whole tensor a field."""
        base = target._base
        if base is None or self.get(base) is not None or base.ndim != target.ndim:
            return
        offset, before = target.storage_offset() - base.storage_offset(), []
        for stride in base.stride():
            before.append(offset // stride if stride else 0)
            offset = offset % stride if stride else offset
        self.set(base, _shift(source_field, before[2:]))


def _shift(fields: Field, pad_before: list[int]) -> Field:
    return tuple(
        ReceptiveField(f.size, f.jump, f.start - p * f.jump)
        for f, p in zip(fields, pad_before, strict=True)
    )


def _field_size(fields: Field) -> int:
    return math.prod(f.size for f in fields)


class _OpCounter(TorchDispatchMode):
    """Dispatch mode that charges every op to the module call on top of the stack."""

    def __init__(self, stack: list[ModuleCall], trace: Trace, fields: _FieldTracker) -> None:
        super().__init__()
        self.stack = stack
        self.trace = trace
        self.fields = fields

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if func in _CONV_OPS:
            macs, ops = _conv_macs(args, out), 0
        elif func in _MM_OPS:
            macs, ops = _matmul_macs(func, args), 0
        else:
            macs, ops = 0, _elementwise_ops(func, args, out)
        if self.stack:
            self.stack[-1].macs += macs
            self.stack[-1].elementwise_ops += ops
        else:
            self.trace.root_macs += macs
            self.trace.root_elementwise_ops += ops
        self.fields.update(func, args, out)
        return out


@contextmanager
def trace(model: nn.Module, *, root_name: str = "") -> Iterator[tuple[Trace, _FieldTracker, TorchDispatchMode]]:
    """Yield (trace, field tracker, dispatch mode) while hooks record every module call of `model`.

    The caller enters the dispatch mode around the forward pass; every hook is removed on exit,
    also when the forward pass raises.
    """
    result = Trace()
    fields = _FieldTracker()
    stack: list[ModuleCall] = []
    handles = []
    counter = _OpCounter(stack, result, fields)
    finish_counter = itertools.count()

    def make_hooks(name: str, module: nn.Module) -> tuple[Any, Any]:
        is_leaf = next(module.children(), None) is None

        def pre_hook(mod: nn.Module, args: tuple) -> None:
            call = ModuleCall(name or root_name, mod, len(result.calls), is_leaf)
            call.input_tensor = _first_tensor(args)
            call.history_start = len(fields.history)
            result.calls.append(call)
            stack.append(call)

        def post_hook(mod: nn.Module, args: tuple, output: Any) -> None:
            call = stack.pop()
            call.finished = next(finish_counter)
            call.output = output
            out_tensor = _first_tensor(output)
            if out_tensor is not None and out_tensor.ndim >= 3:
                call.output_field = fields.get(out_tensor) or fields.recover(
                    out_tensor, call.history_start, call.input_tensor
                )

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
