"""A convolution written out as the sparse matrix it is, and its transpose as a transposed conv.

For one image, a convolution is a linear map y = W x. With zero padding, W is doubly block
Toeplitz in 2D (block Toeplitz with Toeplitz blocks); with circular padding the blocks are
circulant. Multiplying by W^T is exactly a transposed convolution with the same weights, which
is how the course derives it (Dumoulin & Visin 2016, section 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.arithmetic import conv_output_size, same_padding
from cnnlab.errors import CnnlabError

_TRANSPOSED = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def _padding_pairs(layer: nn.Module, spatial: Sequence[int]) -> list[tuple[int, int]]:
    """Return (before, after) padding per spatial dim, for plain and explicitly padded convs."""
    if hasattr(layer, "explicit_pads"):
        return list(layer.explicit_pads(spatial))
    if isinstance(layer.padding, str):  # PyTorch's own "same" / "valid" (stride 1 only)
        if layer.padding == "valid":
            return [(0, 0)] * len(spatial)
        return [
            same_padding(1, k, 1, d) for k, d in zip(layer.kernel_size, layer.dilation, strict=True)
        ]
    return [(p, p) for p in layer.padding]


def _padding_mode(layer: nn.Module) -> str:
    return getattr(layer, "pad_mode", None) or layer.padding_mode


def _map_indices(index: torch.Tensor, size: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (input index, valid) for padded positions `index` under a padding mode."""
    if mode == "zeros":
        return index.clamp(0, size - 1), (index >= 0) & (index < size)
    if mode == "circular":
        return index.remainder(size), torch.ones_like(index, dtype=torch.bool)
    if mode == "replicate":
        return index.clamp(0, size - 1), torch.ones_like(index, dtype=torch.bool)
    if mode == "reflect":  # mirror about the edge pixels, not repeating them
        period = 2 * (size - 1) if size > 1 else 1
        folded = index.remainder(period)
        return torch.where(folded >= size, period - folded, folded), torch.ones_like(index, dtype=torch.bool)
    raise CnnlabError(f"unknown padding mode {mode!r}")


def conv_as_matrix(layer: nn.Module, input_shape: Sequence[int]) -> torch.Tensor:
    """Return the sparse (C_out*prod(out), C_in*prod(in)) matrix W with W @ x.flatten() == conv(x).flatten() - bias."""
    if not isinstance(layer, nn.modules.conv._ConvNd) or layer.transposed:
        raise CnnlabError(f"conv_as_matrix needs a Conv1d/2d/3d layer, got {type(layer).__name__}")
    weight = layer.weight.detach()
    dims = weight.ndim - 2
    if len(input_shape) != dims + 1:
        raise CnnlabError(f"input shape {tuple(input_shape)} must be (C, {', '.join('S' * dims)}) for a {dims}D conv")
    in_channels, *spatial = (int(s) for s in input_shape)
    if in_channels != layer.in_channels:
        raise CnnlabError(f"input has {in_channels} channels; the conv expects {layer.in_channels}")
    pads = _padding_pairs(layer, spatial)
    mode = _padding_mode(layer)
    for size, (before, after) in zip(spatial, pads, strict=True):
        # PyTorch refuses these pads; a matrix for them would describe a layer that cannot run.
        if mode == "reflect" and max(before, after) >= size:
            raise CnnlabError(f"reflect padding {max(before, after)} needs an input larger than it, got {size}")
        if mode == "circular" and max(before, after) > size:
            raise CnnlabError(f"circular padding {max(before, after)} cannot exceed the input size {size}")
    kernel, stride, dilation = weight.shape[2:], layer.stride, layer.dilation
    device = weight.device
    out_sizes = [
        conv_output_size(i, k, s, p, d)
        for i, k, s, p, d in zip(spatial, kernel, stride, pads, dilation, strict=True)
    ]

    # Per spatial dim j: the input index touched by output o_j and kernel tap k_j, placed on
    # axis j (outputs) and axis dims + j (taps) of a (O_1..O_D, K_1..K_D) grid.
    flat_in = torch.zeros([1] * (2 * dims), dtype=torch.long, device=device)
    flat_out = torch.zeros_like(flat_in)
    flat_tap = torch.zeros_like(flat_in)
    valid = torch.ones_like(flat_in, dtype=torch.bool)
    for j in range(dims):
        outputs = torch.arange(out_sizes[j], device=device)
        taps = torch.arange(kernel[j], device=device)
        index = outputs[:, None] * stride[j] - pads[j][0] + taps[None, :] * dilation[j]
        index, ok = _map_indices(index, spatial[j], mode)
        grid_shape = [1] * (2 * dims)
        grid_shape[j], grid_shape[dims + j] = out_sizes[j], kernel[j]
        in_stride = math.prod(spatial[j + 1 :])
        flat_in = flat_in + index.reshape(grid_shape) * in_stride
        valid = valid & ok.reshape(grid_shape)
        out_shape = [1] * (2 * dims)
        out_shape[j] = out_sizes[j]
        flat_out = flat_out + outputs.reshape(out_shape) * math.prod(out_sizes[j + 1 :])
        tap_shape = [1] * (2 * dims)
        tap_shape[dims + j] = kernel[j]
        flat_tap = flat_tap + taps.reshape(tap_shape) * math.prod(kernel[j + 1 :])
    grid = torch.broadcast_shapes(flat_in.shape, flat_out.shape, flat_tap.shape, valid.shape)
    flat_in, flat_out, flat_tap, valid = (
        t.expand(grid).reshape(-1) for t in (flat_in, flat_out, flat_tap, valid)
    )
    flat_in, flat_out, flat_tap = flat_in[valid], flat_out[valid], flat_tap[valid]

    out_per_group = layer.out_channels // layer.groups
    in_per_group = layer.in_channels // layer.groups
    plane_in, plane_out = math.prod(spatial), math.prod(out_sizes)
    rows, cols, values = [], [], []
    taps_flat = weight.reshape(layer.out_channels, in_per_group, -1)  # (C_out, C_in/g, prod(k))
    for out_channel in range(layer.out_channels):
        group = out_channel // out_per_group
        for local in range(in_per_group):
            in_channel = group * in_per_group + local
            rows.append(out_channel * plane_out + flat_out)
            cols.append(in_channel * plane_in + flat_in)
            values.append(taps_flat[out_channel, local, flat_tap])
    indices = torch.stack([torch.cat(rows), torch.cat(cols)])
    size = (layer.out_channels * plane_out, layer.in_channels * plane_in)
    # coalesce() sums duplicates: reflect and circular padding reach one pixel by two taps.
    return torch.sparse_coo_tensor(indices, torch.cat(values), size, check_invariants=True).coalesce()


def transposed_output_padding(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Return the output_padding that makes a transposed conv restore `size`: (i + 2p - d(k-1) - 1) mod s."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) % stride


def matching_conv_transpose(layer: nn.Module, input_shape: Sequence[int]) -> nn.Module:
    """Return the transposed conv, sharing `layer`'s weights, that computes W^T y for its matrix W."""
    if not isinstance(layer, nn.modules.conv._ConvNd) or layer.transposed:
        raise CnnlabError(f"matching_conv_transpose needs a Conv1d/2d/3d layer, got {type(layer).__name__}")
    if _padding_mode(layer) != "zeros" or hasattr(layer, "explicit_pads"):
        raise CnnlabError("a transposed conv matches only zero, symmetric padding: use conv_as_matrix(...).t() instead")
    dims = layer.weight.ndim - 2
    spatial = list(input_shape)[1:]
    pairs = _padding_pairs(layer, spatial)
    if any(before != after for before, after in pairs):
        raise CnnlabError("a transposed conv matches only symmetric padding: use conv_as_matrix(...).t() instead")
    pads = [p for p, _ in pairs]
    output_padding = tuple(
        transposed_output_padding(i, k, s, p, d)
        for i, k, s, p, d in zip(spatial, layer.kernel_size, layer.stride, pads, layer.dilation, strict=True)
    )
    transposed = _TRANSPOSED[dims](
        layer.out_channels,
        layer.in_channels,
        layer.kernel_size,
        stride=layer.stride,
        padding=tuple(pads),
        output_padding=output_padding,
        dilation=layer.dilation,
        groups=layer.groups,
        bias=False,
    )
    # Both layouts are (C_out of the conv, C_in/g, k...): the same tensor serves both layers.
    transposed.weight = layer.weight
    return transposed
