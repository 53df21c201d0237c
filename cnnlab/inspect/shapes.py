"""Output tensors of the commonest ops on the meta device, without PyTorch's Python meta kernels.

Several meta kernels (ReLU, add, BatchNorm, `normal_`, ...) are Python functions that import
`torch._dynamo` the first time they run, about 2 s on a 2-core machine, and so does any
`TorchDispatchMode` that does not opt out. A summary only needs shapes, dtypes and strides,
which for these ops follow from their inputs alone; every other op still runs its own kernel.
Only applies when every tensor argument is on the meta device, where no data exists to compute.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Element-wise ops of one tensor whose output has the input's shape, dtype and strides.
_UNARY = {
    aten.relu.default, aten.gelu.default, aten.tanh.default, aten.sigmoid.default, aten.silu.default,
    aten.hardswish.default, aten.hardsigmoid.default, aten.hardtanh.default, aten.leaky_relu.default,
    aten.elu.default, aten.clone.default, aten.sqrt.default, aten.rsqrt.default, aten.exp.default,
    aten.neg.default,
}
_BINARY = {
    aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.div.Tensor, aten.pow.Tensor_Scalar,
    aten.add.Scalar, aten.mul.Scalar, aten.sub.Scalar, aten.div.Scalar,
}
# In-place ops leave a meta tensor's metadata as it is: initialisation and in-place activations.
_IN_PLACE = {  # op packets: every overload
    aten.normal_, aten.uniform_, aten.fill_, aten.zero_, aten.bernoulli_, aten.exponential_,
    aten.random_, aten.erfinv_, aten.clamp_, aten.relu_, aten.hardtanh_, aten.hardswish_, aten.silu_,
    aten.leaky_relu_, aten.add_, aten.mul_, aten.div_, aten.sub_, aten.copy_,
}


def _all_meta(args: tuple, kwargs: dict) -> bool:
    values = [*args, *kwargs.values()]
    values += [v for a in values if isinstance(a, list | tuple) for v in a]  # cat's list of tensors
    tensors = [a for a in values if isinstance(a, torch.Tensor)]
    return bool(tensors) and all(t.device.type == "meta" for t in tensors)


def meta_output(func: Any, args: tuple, kwargs: dict) -> Any:
    """Return the op's output for meta inputs, or NotImplemented where its own kernel must run."""
    if not _all_meta(args, kwargs):
        return NotImplemented
    if func.overloadpacket in _IN_PLACE:
        target, source = args[0], args[1] if len(args) > 1 else None
        if isinstance(source, torch.Tensor) and _broadcast(tuple(target.shape), tuple(source.shape)) != tuple(target.shape):
            return NotImplemented  # let the kernel raise its own error
        if func.overloadpacket is not aten.copy_ and source is not None and not isinstance(source, torch.Tensor | int | float | bool):
            return NotImplemented
        if (func.overloadpacket in (aten.add_, aten.sub_, aten.mul_, aten.div_) and source is not None
                and not torch.can_cast(torch.result_type(target, source), target.dtype)):
            return NotImplemented  # an integer tensor cannot take a float result in place
        if func.overloadpacket is aten.div_ and not target.dtype.is_floating_point:
            return NotImplemented
        if kwargs:
            return NotImplemented
        return target
    if func in _UNARY and not kwargs.get("memory_format"):
        if not args[0].dtype.is_floating_point:
            return NotImplemented  # sqrt of an integer is a float; neg of a bool is an error
        return _like(args[0])
    if func in _BINARY:
        return _binary(func, args, kwargs)
    if func is aten.convolution.default:
        return _convolution(args)
    if func in (aten.max_pool2d_with_indices.default, aten.avg_pool2d.default):
        return _pool2d(func, args, kwargs)
    if func is aten._adaptive_avg_pool2d.default:
        x, size = args[0], list(args[1])
        if x.ndim not in (3, 4) or not _canonical(x) or len(size) != 2 or min(size) < 1 or min(x.shape[-2:]) < 1:
            return NotImplemented
        return torch.empty((*x.shape[:-2], *size), dtype=x.dtype, device="meta")
    if func is aten.addmm.default:
        bias, a, b = args[:3]
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0] or a.dtype != b.dtype or kwargs:
            return NotImplemented  # the kernel names the mismatch
        if isinstance(bias, torch.Tensor) and (bias.dtype != a.dtype or _broadcast(
                tuple(bias.shape), (a.shape[0], b.shape[1])) != (a.shape[0], b.shape[1])):
            return NotImplemented
        return torch.empty((a.shape[0], b.shape[1]), dtype=a.dtype, device="meta")
    if func is aten.mean.dim:
        return _mean(args, kwargs)
    if func is aten.cat.default:
        return _cat(args, kwargs)
    if func is aten.native_batch_norm.default:
        x = args[0]
        if x.ndim < 2 or x.dtype not in (torch.float32, torch.float64) or any(
                isinstance(t, torch.Tensor) and tuple(t.shape) != (x.shape[1],) for t in args[1:5]):
            return NotImplemented  # the kernel names the mismatch (and picks reduced-precision stats)
        out = _like(x)
        if out is NotImplemented:
            return out
        stats = (x.shape[1],)  # the saved mean and inverse std, one per channel
        return out, torch.empty(stats, dtype=x.dtype, device="meta"), torch.empty(stats, dtype=x.dtype, device="meta")
    if func is aten.native_layer_norm.default:
        x, normalized = args[0], list(args[1])
        if (x.dtype not in (torch.float32, torch.float64) or not normalized or x.ndim < len(normalized)
                or list(x.shape[x.ndim - len(normalized):]) != normalized
                or any(isinstance(t, torch.Tensor) and list(t.shape) != normalized for t in args[2:4])):
            return NotImplemented  # the kernel names the mismatch
        stats = (*x.shape[: x.ndim - len(normalized)], *([1] * len(normalized)))
        return (torch.empty(x.shape, dtype=x.dtype, device="meta"),
                torch.empty(stats, dtype=x.dtype, device="meta"), torch.empty(stats, dtype=x.dtype, device="meta"))
    return NotImplemented


def _broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """Return the broadcast of `shapes`, or None where they do not broadcast (the kernel will say)."""
    out: list[int] = []
    rank = max(len(s) for s in shapes)
    for axis in range(1, rank + 1):
        sizes = {s[-axis] for s in shapes if len(s) >= axis} - {1}
        if len(sizes) > 1:
            return None
        out.append(sizes.pop() if sizes else 1)
    return tuple(reversed(out))


def _canonical(x: torch.Tensor) -> bool:
    """Whether x has exactly the strides of a new contiguous tensor (size-1 dims included)."""
    expected, stride = [], 1
    for size in reversed(x.shape):
        expected.append(stride)
        stride *= max(size, 1)
    return tuple(reversed(expected)) == x.stride()


def _dense(x: torch.Tensor) -> bool:
    """Whether x's elements fill its storage without gaps or overlap, in some order of dims."""
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(x.shape, x.stride(), strict=True) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _like(x: torch.Tensor, dtype: torch.dtype | None = None) -> Any:
    """Return a meta tensor with x's sizes and strides (empty_like's Python ref imports sympy)."""
    if x.is_contiguous():  # canonical strides, as empty_like gives (size-1 dims included)
        return torch.empty(x.shape, dtype=dtype or x.dtype, device="meta")
    if x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.empty(x.shape, dtype=dtype or x.dtype, device="meta", memory_format=torch.channels_last)
    if not _dense(x) or 1 in x.shape:
        return NotImplemented  # empty_like's own rule for such strides: let the kernel apply it
    return torch.empty_strided(x.shape, x.stride(), dtype=dtype or x.dtype, device="meta")


def _convolution(args: tuple) -> Any:
    """The output of aten.convolution: PyTorch's shape formula, for contiguous inputs."""
    x, weight, _, stride, padding, dilation, transposed, output_padding, groups = args[:9]
    spatial = weight.ndim - 2
    if x.ndim != weight.ndim or not (_canonical(x) and _canonical(weight)):
        return NotImplemented  # channels-last and unbatched layouts: the kernel decides
    if len(stride) != spatial or len(padding) != spatial or len(dilation) != spatial:
        return NotImplemented
    if transposed:
        channels = weight.shape[1] * groups
        ok = x.shape[1] == weight.shape[0]
        sizes = [(i - 1) * s - 2 * p + d * (k - 1) + op + 1 for i, k, s, p, d, op in
                 zip(x.shape[2:], weight.shape[2:], stride, padding, dilation, output_padding, strict=True)]
    else:
        channels = weight.shape[0]
        ok = x.shape[1] == weight.shape[1] * groups
        sizes = [(i + 2 * p - d * (k - 1) - 1) // s + 1 for i, k, s, p, d in
                 zip(x.shape[2:], weight.shape[2:], stride, padding, dilation, strict=True)]
    if not ok or any(size < 1 for size in sizes):
        return NotImplemented  # the kernel names the mismatch
    return torch.empty((x.shape[0], channels, *sizes), dtype=x.dtype, device="meta")


def pool_windows(name: str, args: tuple) -> list[tuple[int, int, int, int]]:
    """Return (kernel, stride, padding, dilation) per spatial dim of a max_poolNd / avg_poolNd op.

    `name` is the op's name (max_pool2d_with_indices, avg_pool3d, ...): its digit gives the
    number of spatial dims. A single value applies to every dim; an empty stride is the kernel.
    Raises ValueError where the lists do not match that number.
    """
    spatial = int(re.search(r"(\d)d", name).group(1))

    def per_dim(value: Any, default: int) -> list[int]:
        value = list(value) if value is not None and len(value) else [default]
        return value * spatial if len(value) == 1 else value

    kernel = per_dim(args[1], 1)
    stride = [k if s == 0 else s for k, s in zip(kernel, per_dim(args[2] if len(args) > 2 else None, 0), strict=True)]
    padding = per_dim(args[3] if len(args) > 3 else None, 0)
    dilation = per_dim(args[4], 1) if name.startswith("max_pool") and len(args) > 4 else [1] * spatial
    return list(zip(kernel, stride, padding, dilation, strict=True))


def _pool2d(func: Any, args: tuple, kwargs: dict) -> Any:
    """The output of max/avg pooling in 2-D: PyTorch's formula, ceil mode included."""
    x = args[0]
    if x.ndim != 4 or not _canonical(x) or kwargs:
        return NotImplemented  # other layouts: the kernel picks the output's memory format
    is_max = func is aten.max_pool2d_with_indices.default
    if not is_max and len(args) > 6 and args[6] is not None:
        return NotImplemented  # a divisor override: the kernel checks it
    try:
        windows = pool_windows(func.overloadpacket.__name__, args)
    except ValueError:
        return NotImplemented  # lists of the wrong length: the kernel names them
    ceil_index = 5 if is_max else 4
    ceil = bool(args[ceil_index]) if len(args) > ceil_index else False
    sizes = []
    for i, (k, s, p, d) in zip(x.shape[2:], windows, strict=True):
        if k < 1 or s < 1 or d < 1 or p < 0 or p > k // 2:
            return NotImplemented  # the kernel names the bad kernel, stride, dilation or padding
        span = i + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)
        out = span // s + 1
        if ceil and (out - 1) * s >= i + p:  # the last window must start inside the input
            out -= 1
        if out < 1:
            return NotImplemented
        sizes.append(out)
    out = torch.empty((*x.shape[:2], *sizes), dtype=x.dtype, device="meta")
    if is_max:
        return out, torch.empty(out.shape, dtype=torch.int64, device="meta")
    return out


def _binary(func: Any, args: tuple, kwargs: dict) -> Any:
    a, b = args[0], args[1]
    if kwargs or len(args) > 2:
        return NotImplemented  # alpha or a rounding mode: the kernel checks and applies them
    tensors = [t for t in (a, b) if isinstance(t, torch.Tensor)]
    shape = _broadcast(*(tuple(t.shape) for t in tensors))
    if shape is None:
        return NotImplemented
    full = [t for t in tensors if tuple(t.shape) == shape]
    # Two full-size inputs with different strides: the kernel's layout choice is its own.
    if len(full) == 2 and full[0].stride() != full[1].stride():
        return NotImplemented
    dtype = torch.result_type(a, b)
    if dtype.is_complex or dtype == torch.bool and func.overloadpacket in (aten.sub, aten.div, aten.pow):
        return NotImplemented
    if func.overloadpacket is aten.pow and not dtype.is_floating_point:
        return NotImplemented  # an integer to a negative power is an error the kernel raises
    if func.overloadpacket is aten.div and not dtype.is_floating_point:
        dtype = torch.get_default_dtype()  # true division of integers gives floats
    if full:
        return _like(full[0], dtype)
    return torch.empty(shape, dtype=dtype, device="meta")


def _mean(args: tuple, kwargs: dict) -> Any:
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    dtype = kwargs.get("dtype") or (args[3] if len(args) > 3 else None) or x.dtype
    if not x.dtype.is_floating_point or dims is None or x.ndim == 0:
        return NotImplemented
    if any(not -x.ndim <= d < x.ndim for d in dims) or len({d % x.ndim for d in dims}) != len(dims):
        return NotImplemented  # out of range or repeated: the kernel names it
    reduced = {d % x.ndim for d in dims} if len(dims) else set(range(x.ndim))
    shape = [1 if i in reduced else s for i, s in enumerate(x.shape) if keepdim or i not in reduced]
    return torch.empty(shape, dtype=dtype, device="meta")


def _cat(args: tuple, kwargs: dict) -> Any:
    tensors = [t for t in args[0] if not (t.ndim == 1 and t.numel() == 0)]  # legacy cat skips these
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not tensors or not all(_canonical(t) for t in tensors) or len({t.dtype for t in tensors}) != 1:
        return NotImplemented
    if tensors[0].ndim == 0 or not -tensors[0].ndim <= dim < tensors[0].ndim:
        return NotImplemented
    dim %= tensors[0].ndim
    others = {tuple(s for i, s in enumerate(t.shape) if i != dim) for t in tensors}
    if len(others) != 1 or len({t.ndim for t in tensors}) != 1:
        return NotImplemented  # the kernel names the mismatch
    shape = list(tensors[0].shape)
    shape[dim] = sum(t.shape[dim] for t in tensors)
    return torch.empty(shape, dtype=tensors[0].dtype, device="meta")


class MetaShapes(TorchDispatchMode):
    """Dispatch mode that answers `meta_output`'s ops itself (building a model on the meta device)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # The documented opt-out: by default a mode's handler is wrapped in a dynamo-disable that
        # imports torch._dynamo on first use. Nothing here ever runs under torch.compile.
        return False

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = meta_output(func, args, kwargs)
        return func(*args, **kwargs) if out is NotImplemented else out
