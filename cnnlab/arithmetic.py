"""Pure integer arithmetic of convolutional layers: shapes, padding, counts, receptive fields.

No torch import here on purpose: these formulas are what a student checks by hand, and the
conv factory, the summary and the CLI all share them. A floor of its own, just above `errors`,
so that `cnnlab arith` answers without loading torch (importing anything under `cnnlab.nn`
would run that package's torch imports first). Every formula follows Dumoulin & Visin,
"A guide to convolution arithmetic for deep learning" (2016), and PyTorch's documented rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from cnnlab.errors import CnnlabError, ShapeError


class PaddingPolicy(StrEnum):
    """Named padding policies; an explicit integer or (before, after) pair is the other option."""

    VALID = "valid"  # no padding: o = floor((i - d(k-1) - 1)/s) + 1
    SAME = "same"  # TensorFlow's rule: o = ceil(i/s), smaller half of the padding before
    FULL = "full"  # d(k-1) on both sides: every partial overlap of kernel and input


Padding = int | tuple[int, int] | str | PaddingPolicy


def _check_positive(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ShapeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ShapeError(f"{name} must be >= {minimum}, got {value}")


def parse_padding_policy(padding: str | PaddingPolicy) -> PaddingPolicy:
    """Return the PaddingPolicy named by `padding`, or raise naming the accepted policies."""
    if isinstance(padding, PaddingPolicy):
        return padding
    try:
        return PaddingPolicy(str(padding).lower())
    except ValueError:
        accepted = ", ".join(p.value for p in PaddingPolicy)
        raise ShapeError(
            f"unknown padding policy {padding!r}: use an integer or one of {accepted}"
        ) from None


def same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """Return (before, after) padding for TensorFlow's "same": output ceil(size/stride)."""
    _check_positive("size", size)
    _check_positive("kernel", kernel)
    _check_positive("stride", stride)
    _check_positive("dilation", dilation)
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    before = total // 2  # the smaller half goes first, as in TensorFlow
    return before, total - before


def resolve_padding(
    padding: Padding, size: int, kernel: int, stride: int = 1, dilation: int = 1
) -> tuple[int, int]:
    """Return the (before, after) padding that `padding` means for one spatial dimension."""
    if isinstance(padding, bool):
        raise ShapeError(f"padding must be an integer, a pair or a policy, got {padding!r}")
    if isinstance(padding, int):
        if padding < 0:
            raise ShapeError(f"padding must be >= 0, got {padding}")
        return padding, padding
    if isinstance(padding, tuple):
        if len(padding) != 2 or any(not isinstance(p, int) or p < 0 for p in padding):
            raise ShapeError(f"padding pair must be two integers >= 0, got {padding!r}")
        return padding[0], padding[1]
    policy = parse_padding_policy(padding)
    if policy is PaddingPolicy.VALID:
        return 0, 0
    if policy is PaddingPolicy.FULL:
        return dilation * (kernel - 1), dilation * (kernel - 1)
    return same_padding(size, kernel, stride, dilation)


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: Padding = 0, dilation: int = 1
) -> int:
    """Return the output length of a convolution: floor((i + p_total - d(k-1) - 1)/s) + 1."""
    _check_positive("size", size)
    _check_positive("kernel", kernel)
    _check_positive("stride", stride)
    _check_positive("dilation", dilation)
    before, after = resolve_padding(padding, size, kernel, stride, dilation)
    span = size + before + after - dilation * (kernel - 1) - 1
    if span < 0:
        raise ShapeError(
            f"kernel extent {dilation * (kernel - 1) + 1} is larger than the padded input "
            f"{size + before + after}: use a smaller kernel or dilation, or more padding"
        )
    return span // stride + 1


def conv_transpose_output_size(
    size: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_padding: int = 0,
) -> int:
    """Return the output length of a transposed convolution: s(i-1) + d(k-1) + 1 - 2p + op."""
    _check_positive("size", size)
    _check_positive("kernel", kernel)
    _check_positive("stride", stride)
    _check_positive("dilation", dilation)
    _check_positive("padding", padding, minimum=0)
    _check_positive("output_padding", output_padding, minimum=0)
    if output_padding >= max(stride, dilation):
        raise ShapeError(
            f"output_padding {output_padding} must be smaller than stride or dilation "
            f"({stride}, {dilation}): it only picks among the sizes a strided conv maps to one"
        )
    out = stride * (size - 1) + dilation * (kernel - 1) + 1 - 2 * padding + output_padding
    if out < 1:
        raise ShapeError(
            f"padding {padding} removes the whole output ({out} left): use less padding"
        )
    return out


def transposed_same_padding(kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Return (padding, output_padding) that make a transposed conv's output exactly stride x input."""
    _check_positive("kernel", kernel)
    _check_positive("stride", stride)
    _check_positive("dilation", dilation)
    # Solve s(i-1) + d(k-1) + 1 - 2p + op = s*i for the smallest p >= 0 with op >= 0.
    excess = dilation * (kernel - 1) + 1 - stride
    padding = max(-(-excess // 2), 0)
    output_padding = 2 * padding - excess
    if output_padding >= max(stride, dilation):
        # Only an even kernel extent at stride 1 lands here: it would need output_padding 1.
        raise ShapeError(
            f'"same" is impossible for a transposed conv with kernel {kernel} at stride {stride}, '
            f"dilation {dilation}: use an odd kernel, or a stride above 1"
        )
    return padding, output_padding


def pool_output_size(
    size: int,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Return the output length of max/avg pooling, with PyTorch's ceil-mode rule."""
    stride = kernel if stride is None else stride
    _check_positive("size", size)
    _check_positive("kernel", kernel)
    _check_positive("stride", stride)
    _check_positive("dilation", dilation)
    _check_positive("padding", padding, minimum=0)
    if padding * 2 > kernel:
        raise ShapeError(
            f"pooling padding {padding} must be at most half the kernel {kernel}: "
            "a window of padding alone has no maximum"
        )
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    # Python's // floors, as PyTorch's div_rtn does; ceil mode adds stride - 1 first.
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    # The last window must start inside the input or the left padding (PyTorch's rule).
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    if out < 1:
        raise ShapeError(
            f"pooling window {dilation * (kernel - 1) + 1} is larger than the padded input "
            f"{size + 2 * padding}: use a smaller kernel or more padding"
        )
    return out


def _prod(values: Sequence[int]) -> int:
    return math.prod(values)


def conv_params(
    in_channels: int,
    out_channels: int,
    kernel: Sequence[int] | int,
    groups: int = 1,
    bias: bool = True,
    dims: int = 2,
) -> int:
    """Return the parameter count of a convolution: C_out * C_in/g * prod(k) (+ C_out bias)."""
    kernel_t = (kernel,) * dims if isinstance(kernel, int) else tuple(kernel)
    _check_positive("groups", groups)
    if in_channels % groups or out_channels % groups:
        raise ShapeError(
            f"groups {groups} must divide in_channels {in_channels} and "
            f"out_channels {out_channels}"
        )
    return out_channels * (in_channels // groups) * _prod(kernel_t) + (out_channels if bias else 0)


def conv_macs(
    in_channels: int,
    out_channels: int,
    kernel: Sequence[int] | int,
    output_size: Sequence[int] | int,
    groups: int = 1,
) -> int:
    """Return multiply-accumulates of one image through a conv: prod(out) * C_out * C_in/g * prod(k)."""
    out_t = (output_size,) if isinstance(output_size, int) else tuple(output_size)
    kernel_t = (kernel,) * len(out_t) if isinstance(kernel, int) else tuple(kernel)
    return _prod(out_t) * out_channels * (in_channels // groups) * _prod(kernel_t)


def conv_transpose_macs(
    in_channels: int,
    out_channels: int,
    kernel: Sequence[int] | int,
    input_size: Sequence[int] | int,
    groups: int = 1,
) -> int:
    """Return MACs of a transposed conv: each input pixel scatters C_out/g * prod(k) products."""
    in_t = (input_size,) if isinstance(input_size, int) else tuple(input_size)
    kernel_t = (kernel,) * len(in_t) if isinstance(kernel, int) else tuple(kernel)
    return _prod(in_t) * in_channels * (out_channels // groups) * _prod(kernel_t)


def linear_params(in_features: int, out_features: int, bias: bool = True) -> int:
    """Return the parameter count of a fully-connected layer."""
    return in_features * out_features + (out_features if bias else 0)


def linear_macs(in_features: int, out_features: int) -> int:
    """Return multiply-accumulates of one input vector through a fully-connected layer."""
    return in_features * out_features


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one unit after a layer, in input pixels (one spatial dimension)."""

    size: int  # r_l: input pixels one output unit sees
    jump: int  # j_l: input pixels between two neighbouring output units
    start: float  # centre of the first output unit's field, in input pixel coordinates (0 = first pixel)


INPUT_FIELD = ReceptiveField(size=1, jump=1, start=0.0)


def next_receptive_field(
    previous: ReceptiveField,
    kernel: int,
    stride: int = 1,
    padding_before: int = 0,
    dilation: int = 1,
) -> ReceptiveField:
    """Return the field after one layer: j = j' s, r = r' + d(k-1) j', start shifts by ((k-1)d/2 - p) j'."""
    _check_positive("kernel", kernel)
    _check_positive("stride", stride)
    _check_positive("dilation", dilation)
    return ReceptiveField(
        size=previous.size + dilation * (kernel - 1) * previous.jump,
        jump=previous.jump * stride,
        start=previous.start + ((kernel - 1) * dilation / 2 - padding_before) * previous.jump,
    )


def receptive_fields(
    layers: Sequence[tuple[int, int, int, int]], start: ReceptiveField = INPUT_FIELD
) -> list[ReceptiveField]:
    """Return the field after each (kernel, stride, padding_before, dilation) layer in turn."""
    fields = []
    current = start
    for kernel, stride, padding_before, dilation in layers:
        current = next_receptive_field(current, kernel, stride, padding_before, dilation)
        fields.append(current)
    return fields


# One layer by hand: output size, padding used, receptive field, parameters and MACs (`cnnlab arith`).

LayerOp = Literal["conv", "tconv", "pool"]


def per_dim(values: Sequence[int], dims: int, what: str) -> tuple[int, ...]:
    """Return `values` with one entry per spatial dimension (a single value is repeated)."""
    values = tuple(values)
    if len(values) == 1:
        return values * dims
    if len(values) != dims:
        raise CnnlabError(f"{what} has {len(values)} entries but the input has {dims} dimensions")
    return values


def _output_and_padding(op: LayerOp, i: int, k: int, s: int, d: int, padding: int | str, output_padding: int,
                        ceil_mode: bool) -> tuple[int, tuple[int, int]]:
    """Return (output size, (padding before, after)) of one dimension."""
    if op == "conv":
        return conv_output_size(i, k, s, padding, d), resolve_padding(padding, i, k, s, d)
    if op == "tconv":
        if isinstance(padding, int):
            p, extra = padding, output_padding
        elif parse_padding_policy(padding) is PaddingPolicy.SAME:
            p, extra = transposed_same_padding(k, s, d)
        elif parse_padding_policy(padding) is PaddingPolicy.VALID:
            p, extra = 0, output_padding
        else:
            raise CnnlabError("a transposed conv takes --padding N, valid or same")
        return conv_transpose_output_size(i, k, s, p, d, extra), (p, p)
    if not isinstance(padding, int):
        raise CnnlabError(f"pooling takes an integer --padding, got {padding!r}")
    return pool_output_size(i, k, s, padding, d, ceil_mode=ceil_mode), (padding, padding)


def layer_arithmetic(
    op: LayerOp, input_size: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: int | str = 0,
    dilation: Sequence[int] = (1,), *, output_padding: int = 0, ceil_mode: bool = False,
    in_channels: int = 1, out_channels: int = 1, groups: int = 1, bias: bool = True,
) -> dict[str, Any]:
    """Return output size, padding, parameters, MACs (and receptive field and jump) of one layer."""
    sizes = tuple(input_size)
    dims = len(sizes)
    kernel, stride = per_dim(kernel, dims, "--kernel"), per_dim(stride, dims, "--stride")
    dilation = per_dim(dilation, dims, "--dilation")
    out, pads = [], []
    for i, k, s, d in zip(sizes, kernel, stride, dilation, strict=True):
        size, pad = _output_and_padding(op, i, k, s, d, padding, output_padding, ceil_mode)
        out.append(size)
        pads.append(pad)
    if op == "conv":
        params = conv_params(in_channels, out_channels, kernel, groups, bias=bias, dims=dims)
        macs = conv_macs(in_channels, out_channels, kernel, out, groups)
    elif op == "tconv":
        params = conv_params(out_channels, in_channels, kernel, groups, bias=False, dims=dims) + (out_channels if bias else 0)
        macs = conv_transpose_macs(in_channels, out_channels, kernel, sizes, groups)
    else:
        params, macs = 0, 0
    result: dict[str, Any] = {"op": op, "input": list(sizes), "output": out, "padding": [list(p) for p in pads],
                              "params": params, "macs": macs}
    if op != "tconv":  # a transposed conv up-samples: no whole-pixel field of its own
        result["receptive_field"] = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
        result["jump"] = list(stride)
    return result
