"""Convolution variants behind one factory: any dimension, stride, dilation, groups and padding policy.

The factory returns PyTorch's own `nn.ConvNd` whenever the padding is symmetric and known when
the layer is built, so the common case costs nothing; otherwise (TensorFlow's "same" at stride
> 1, or an even kernel extent) it returns a subclass that pads explicitly in `forward`. Both
keep PyTorch's parameter names, so state dicts move freely between them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.arithmetic import (
    Padding,
    PaddingPolicy,
    parse_padding_policy,
    resolve_padding,
    same_padding,
    transposed_same_padding,
)
from cnnlab.errors import CnnlabError
from cnnlab.nn.factory import LayerFactory, build_act

IntOrTuple = int | Sequence[int]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_CONV: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_CONV_T: dict[int, type[nn.Module]] = {
    1: nn.ConvTranspose1d,
    2: nn.ConvTranspose2d,
    3: nn.ConvTranspose3d,
}


def _as_tuple(value: IntOrTuple, dims: int, name: str) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    value = tuple(value)
    if len(value) != dims:
        raise CnnlabError(f"{name} {value} has {len(value)} entries; a {dims}D layer needs {dims}")
    return value


def _check_dims(dims: int) -> None:
    if dims not in _CONV:
        raise CnnlabError(f"dims must be 1, 2 or 3, got {dims}")


class _ExplicitPadding:
    """Mixin: pad with F.pad before a padding-0 convolution (asymmetric or input-dependent pads)."""

    # Set by `conv()`; `None` entries are "same" pads computed from the input size at forward time.
    pads: tuple[tuple[int, int] | None, ...]
    pad_mode: str
    policy: PaddingPolicy | None

    def explicit_pads(self, spatial: Sequence[int]) -> tuple[tuple[int, int], ...]:
        """Return (before, after) per spatial dimension for an input of size `spatial`."""
        result = []
        for size, fixed, k, s, d in zip(
            spatial, self.pads, self.kernel_size, self.stride, self.dilation, strict=True
        ):
            result.append(fixed if fixed is not None else same_padding(size, k, s, d))
        return tuple(result)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the convolution of x padded by the explicit (possibly asymmetric) pads."""
        pads = self.explicit_pads(x.shape[2:])
        flat = [p for pair in reversed(pads) for p in pair]  # F.pad wants the last dim first
        mode = "constant" if self.pad_mode == "zeros" else self.pad_mode
        x = F.pad(x, flat, mode=mode)
        return self._conv_forward(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        """Return the settings shown when the module is printed."""
        pads = ", ".join("same" if p is None else f"{p[0]}+{p[1]}" for p in self.pads)
        return f"{super().extra_repr()}, explicit_pads=({pads}), pad_mode={self.pad_mode}"


class PaddedConv1d(_ExplicitPadding, nn.Conv1d):
    """1D convolution with explicit, possibly asymmetric or input-dependent padding."""


class PaddedConv2d(_ExplicitPadding, nn.Conv2d):
    """2D convolution with explicit, possibly asymmetric or input-dependent padding."""


class PaddedConv3d(_ExplicitPadding, nn.Conv3d):
    """3D convolution with explicit, possibly asymmetric or input-dependent padding."""


_PADDED: dict[int, type[nn.Module]] = {1: PaddedConv1d, 2: PaddedConv2d, 3: PaddedConv3d}


def conv(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple = 1,
    padding: Padding | Sequence[int | tuple[int, int]] = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    bias: bool = True,
    padding_mode: str = "zeros",
    dims: int = 2,
) -> nn.Module:
    """Return a `dims`-D convolution with the given padding policy (int, pair, valid, same, full)."""
    _check_dims(dims)
    if padding_mode not in PADDING_MODES:
        raise CnnlabError(
            f"unknown padding mode {padding_mode!r}: use one of {', '.join(PADDING_MODES)}"
        )
    if groups < 1 or in_channels % groups or out_channels % groups:
        raise CnnlabError(
            f"groups {groups} must be >= 1 and divide in_channels {in_channels} and out_channels {out_channels}"
        )
    kernel = _as_tuple(kernel_size, dims, "kernel_size")
    strides = _as_tuple(stride, dims, "stride")
    dilations = _as_tuple(dilation, dims, "dilation")
    for name, values in (("kernel_size", kernel), ("stride", strides), ("dilation", dilations)):
        if any(v < 1 for v in values):
            raise CnnlabError(f"{name} must be >= 1, got {values}")
    if dims == 1 and isinstance(padding, tuple) and len(padding) == 2 and all(isinstance(p, int) for p in padding):
        padding = [padding]  # for one dimension a pair of ints is (before, after), as `Padding` says

    policy = None
    if isinstance(padding, str | PaddingPolicy):
        policy = parse_padding_policy(padding)
        per_dim: list[tuple[int, int] | None] = []
        for k, s, d in zip(kernel, strides, dilations, strict=True):
            if policy is PaddingPolicy.SAME and s > 1:
                per_dim.append(None)  # depends on the input size modulo the stride
            else:
                # At stride 1 "same" pads d(k-1) in total whatever the size; size 1 stands in.
                per_dim.append(resolve_padding(policy, 1, k, s, d))
    elif isinstance(padding, int):
        per_dim = [resolve_padding(padding, 1, 1)] * dims
    else:
        entries = list(padding)
        if len(entries) != dims:
            raise CnnlabError(f"padding {padding!r} needs {dims} entries for a {dims}D conv")
        per_dim = [resolve_padding(p if isinstance(p, int) else tuple(p), 1, 1) for p in entries]

    symmetric = all(p is not None and p[0] == p[1] for p in per_dim)
    if symmetric:
        return _CONV[dims](
            in_channels,
            out_channels,
            kernel,
            stride=strides,
            padding=tuple(p[0] for p in per_dim),  # type: ignore[index]
            dilation=dilations,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
        )
    layer = _PADDED[dims](
        in_channels,
        out_channels,
        kernel,
        stride=strides,
        padding=0,
        dilation=dilations,
        groups=groups,
        bias=bias,
    )
    layer.pads = tuple(per_dim)
    layer.pad_mode = padding_mode
    layer.policy = policy
    return layer


def conv1x1(
    in_channels: int, out_channels: int, *, stride: int = 1, groups: int = 1, bias: bool = True
) -> nn.Module:
    """Return a 1x1 (point-wise) 2D convolution: a per-pixel linear map across channels."""
    return conv(in_channels, out_channels, 1, stride=stride, groups=groups, bias=bias)


def grouped_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrTuple,
    groups: int,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = "same",
    bias: bool = True,
    dims: int = 2,
) -> nn.Module:
    """Return a grouped convolution: `groups` independent convs over channel slices (AlexNet, ResNeXt)."""
    return conv(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=padding,
        groups=groups,
        bias=bias,
        dims=dims,
    )


def depthwise_conv(
    channels: int,
    kernel_size: IntOrTuple = 3,
    *,
    stride: IntOrTuple = 1,
    padding: Padding = "same",
    dilation: IntOrTuple = 1,
    depth_multiplier: int = 1,
    bias: bool = True,
    dims: int = 2,
) -> nn.Module:
    """Return a depth-wise convolution: one filter (or `depth_multiplier`) per input channel."""
    return conv(
        channels,
        channels * depth_multiplier,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=channels,
        bias=bias,
        dims=dims,
    )


def conv_transpose(
    in_channels: int,
    out_channels: int,
    kernel_size: IntOrTuple,
    *,
    stride: IntOrTuple = 1,
    padding: IntOrTuple | str = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    groups: int = 1,
    bias: bool = True,
    dims: int = 2,
) -> nn.Module:
    """Return a transposed convolution; padding "same" makes the output exactly stride x input."""
    _check_dims(dims)
    kernel = _as_tuple(kernel_size, dims, "kernel_size")
    strides = _as_tuple(stride, dims, "stride")
    dilations = _as_tuple(dilation, dims, "dilation")
    if isinstance(padding, str):
        policy = parse_padding_policy(padding)
        if policy is PaddingPolicy.FULL:
            raise CnnlabError('a transposed conv takes padding "valid", "same" or integers')
        pairs = [
            (0, 0) if policy is PaddingPolicy.VALID else transposed_same_padding(k, s, d)
            for k, s, d in zip(kernel, strides, dilations, strict=True)
        ]
        padding_t = tuple(p for p, _ in pairs)
        output_padding_t = tuple(op for _, op in pairs)
    else:
        padding_t = _as_tuple(padding, dims, "padding")
        output_padding_t = _as_tuple(output_padding, dims, "output_padding")
    return _CONV_T[dims](
        in_channels,
        out_channels,
        kernel,
        stride=strides,
        padding=padding_t,
        output_padding=output_padding_t,
        dilation=dilations,
        groups=groups,
        bias=bias,
    )


class _DefaultNorm:
    """Sentinel: BatchNorm of the conv's dimension (BatchNorm1d for a 1D ConvNormAct...)."""


_BATCH_NORM: dict[int, type[nn.Module]] = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class ConvNormAct(nn.Sequential):
    """Conv -> norm -> activation, each optional; the workhorse of every CNN since 2015."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple = 3,
        *,
        stride: IntOrTuple = 1,
        padding: Padding = "same",
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool | None = None,
        padding_mode: str = "zeros",
        norm_layer: LayerFactory | None | type[_DefaultNorm] = _DefaultNorm,
        act_layer: LayerFactory | None = nn.ReLU,
        dims: int = 2,
        inplace: bool = True,
    ) -> None:
        super().__init__()
        if norm_layer is _DefaultNorm:
            _check_dims(dims)
            norm_layer = _BATCH_NORM[dims]
        # A bias before a norm layer is cancelled by the norm's mean subtraction (Ioffe & Szegedy 2015).
        use_bias = norm_layer is None if bias is None else bias
        self.conv = conv(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=use_bias,
            padding_mode=padding_mode,
            dims=dims,
        )
        if norm_layer is not None:
            self.norm = norm_layer(out_channels)
        if act_layer is not None:
            # In place, as torchvision's Conv2dNormActivation: neither the conv nor the norm
            # needs its own output for backward, so one tensor serves both and memory halves.
            self.act = build_act(act_layer, inplace)


class DepthwiseSeparableConv(nn.Sequential):
    """Depth-wise k x k conv then point-wise 1x1 conv (Sifre 2014; MobileNet v1, Xception)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        padding: Padding = "same",
        dilation: int = 1,
        depth_multiplier: int = 1,
        norm_layer: LayerFactory | None = nn.BatchNorm2d,
        act_layer: LayerFactory | None = nn.ReLU,
        depthwise_act: bool = True,
    ) -> None:
        super().__init__()
        mid = in_channels * depth_multiplier
        self.depthwise = ConvNormAct(
            in_channels,
            mid,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=in_channels,
            norm_layer=norm_layer,
            act_layer=act_layer if depthwise_act else None,
        )
        self.pointwise = ConvNormAct(
            mid, out_channels, 1, norm_layer=norm_layer, act_layer=act_layer
        )


class SpatiallySeparableConv(nn.Sequential):
    """A k x 1 conv then a 1 x k conv: the k x k field for 2k instead of k^2 weights (Inception v3)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        mid_channels: int | None = None,
        stride: int = 1,
        padding: Padding = "same",
        bias: bool = True,
    ) -> None:
        super().__init__()
        mid = out_channels if mid_channels is None else mid_channels
        self.vertical = conv(
            in_channels, mid, (kernel_size, 1), stride=(stride, 1), padding=padding, bias=bias
        )
        self.horizontal = conv(
            mid, out_channels, (1, kernel_size), stride=(1, stride), padding=padding, bias=bias
        )
