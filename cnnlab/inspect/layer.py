"""One layer by hand: output size, padding used, receptive field, parameters and MACs (`cnnlab arith`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from cnnlab.errors import CnnlabError
from cnnlab.nn import arithmetic as ar

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
        return ar.conv_output_size(i, k, s, padding, d), ar.resolve_padding(padding, i, k, s, d)
    if op == "tconv":
        if isinstance(padding, int):
            p, extra = padding, output_padding
        elif ar.parse_padding_policy(padding) is ar.PaddingPolicy.SAME:
            p, extra = ar.transposed_same_padding(k, s, d)
        elif ar.parse_padding_policy(padding) is ar.PaddingPolicy.VALID:
            p, extra = 0, output_padding
        else:
            raise CnnlabError("a transposed conv takes --padding N, valid or same")
        return ar.conv_transpose_output_size(i, k, s, p, d, extra), (p, p)
    if not isinstance(padding, int):
        raise CnnlabError(f"pooling takes an integer --padding, got {padding!r}")
    return ar.pool_output_size(i, k, s, padding, d, ceil_mode=ceil_mode), (padding, padding)


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
        params = ar.conv_params(in_channels, out_channels, kernel, groups, bias=bias, dims=dims)
        macs = ar.conv_macs(in_channels, out_channels, kernel, out, groups)
    elif op == "tconv":
        params = ar.conv_params(out_channels, in_channels, kernel, groups, bias=False, dims=dims) + (out_channels if bias else 0)
        macs = ar.conv_transpose_macs(in_channels, out_channels, kernel, sizes, groups)
    else:
        params, macs = 0, 0
    result: dict[str, Any] = {"op": op, "input": list(sizes), "output": out, "padding": [list(p) for p in pads],
                              "params": params, "macs": macs}
    if op != "tconv":  # a transposed conv up-samples: no whole-pixel field of its own
        result["receptive_field"] = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
        result["jump"] = list(stride)
    return result
