"""Pooling layers beyond PyTorch's max/avg: Lp, stochastic, fractional, spatial pyramid, global."""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError


class PoolMode(StrEnum):
    """How a window is reduced to one value."""

    MAX = "max"
    AVG = "avg"


_MAX = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
_AVG = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


def pool(
    mode: PoolMode | str,
    kernel_size: int | tuple[int, ...],
    stride: int | tuple[int, ...] | None = None,
    padding: int | tuple[int, ...] = 0,
    *,
    ceil_mode: bool = False,
    dims: int = 2,
) -> nn.Module:
    """Return PyTorch's max or average pooling for `dims` spatial dimensions."""
    try:
        mode = PoolMode(mode)
    except ValueError:
        raise CnnlabError(f"unknown pooling mode {mode!r}: use max or avg") from None
    if dims not in _MAX:
        raise CnnlabError(f"dims must be 1, 2 or 3, got {dims}")
    table = _MAX if mode is PoolMode.MAX else _AVG
    return table[dims](kernel_size, stride, padding, ceil_mode=ceil_mode)


class LpPool2d(nn.Module):
    """Lp pooling: (sum x^p)^(1/p) over each window as F.lp_pool2d, or (mean x^p)^(1/p) with mean=True.

    p = 1 is sum pooling (average pooling times the window size), p -> inf tends to max pooling
    (Boureau et al. 2010 study the family). The power-mean form keeps the scale of the input.
    """

    def __init__(
        self,
        norm_type: float,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        *,
        ceil_mode: bool = False,
        mean: bool = False,
    ) -> None:
        super().__init__()
        if norm_type <= 0:
            raise CnnlabError(f"Lp pooling needs p > 0, got {norm_type}")
        self.norm_type = float(norm_type)
        self.kernel_size = kernel_size
        self.stride = stride
        self.ceil_mode = ceil_mode
        self.mean = mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the Lp-pooled map (sum form, or power mean with mean=True)."""
        out = F.lp_pool2d(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)
        if not self.mean:
            return out
        kh, kw = (
            (self.kernel_size, self.kernel_size)
            if isinstance(self.kernel_size, int)
            else self.kernel_size
        )
        # (sum/n)^(1/p) = sum^(1/p) / n^(1/p)
        return out / (kh * kw) ** (1.0 / self.norm_type)

    def extra_repr(self) -> str:
        """Return the settings shown when the module is printed."""
        return f"p={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, mean={self.mean}"


class StochasticPool2d(nn.Module):
    """Stochastic pooling (Zeiler & Fergus 2013) over non-negative activations.

    Training: each window outputs one of its values a_i, drawn with probability a_i / sum(a).
    Evaluation: the probability-weighted average sum(a_i^2) / sum(a). A window of zeros gives 0.
    """

    def __init__(self, kernel_size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the stochastically pooled map (B, C, H_out, W_out)."""
        batch, channels, height, width = x.shape
        out_h = (height - self.kernel_size) // self.stride + 1
        out_w = (width - self.kernel_size) // self.stride + 1
        # The paper pools rectified activations; negative inputs would give negative probabilities.
        values = F.unfold(
            x.clamp_min(0).reshape(batch * channels, 1, height, width),
            self.kernel_size,
            stride=self.stride,
        )  # (B*C, k*k, L)
        total = values.sum(dim=1, keepdim=True)  # (B*C, 1, L)
        if self.training:
            probs = values.permute(0, 2, 1).reshape(-1, values.shape[1])  # (B*C*L, k*k)
            empty = probs.sum(dim=1, keepdim=True) == 0
            probs = torch.where(empty, torch.ones_like(probs), probs)  # any pick of zeros is 0
            pick = torch.multinomial(probs, 1)  # (B*C*L, 1)
            out = probs.gather(1, pick)
            out = torch.where(empty, torch.zeros_like(out), out)
        else:
            weighted = (values * values).sum(dim=1, keepdim=True)
            out = torch.where(total > 0, weighted / total.clamp_min(1e-12), torch.zeros_like(total))
        return out.reshape(batch, channels, out_h, out_w)  # (B, C, H_out, W_out)

    def extra_repr(self) -> str:
        """Return the settings shown when the module is printed."""
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


def fractional_max_pool(
    kernel_size: int = 2,
    output_ratio: float = 1 / math.sqrt(2),
    *,
    return_indices: bool = False,
) -> nn.FractionalMaxPool2d:
    """Return fractional max pooling (Graham 2014) shrinking each side by `output_ratio` (default 1/sqrt 2)."""
    if not 0 < output_ratio < 1:
        raise CnnlabError(f"output_ratio must lie in (0, 1), got {output_ratio}")
    return nn.FractionalMaxPool2d(
        kernel_size, output_ratio=output_ratio, return_indices=return_indices
    )


class SpatialPyramidPool(nn.Module):
    """Spatial pyramid pooling (He et al. 2014): a fixed-length vector from any input size.

    Each level n splits the map into an n x n grid and pools every cell, so the output has
    C * sum(n^2) values whatever H and W are (H, W >= the largest level).
    """

    def __init__(self, levels: Sequence[int] = (1, 2, 4), mode: PoolMode = PoolMode.MAX) -> None:
        super().__init__()
        if not levels or any(n < 1 for n in levels):
            raise CnnlabError(f"pyramid levels must be positive integers, got {list(levels)}")
        self.levels = tuple(levels)
        self.mode = PoolMode(mode)

    def output_features(self, channels: int) -> int:
        """Return the output length for `channels` input channels: C * sum(n^2)."""
        return channels * sum(n * n for n in self.levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the concatenated pyramid of pooled cells (B, C * sum(n^2))."""
        pool = F.adaptive_max_pool2d if self.mode is PoolMode.MAX else F.adaptive_avg_pool2d
        parts = [pool(x, n).flatten(1) for n in self.levels]  # each (B, C*n*n)
        return torch.cat(parts, dim=1)  # (B, C*sum(n^2))

    def extra_repr(self) -> str:
        """Return the settings shown when the module is printed."""
        return f"levels={self.levels}, mode={self.mode.value}"


class GlobalPool(nn.Module):
    """Global average or max pooling over all spatial positions (Lin et al. 2013, NiN)."""

    def __init__(self, mode: PoolMode = PoolMode.AVG, *, flatten: bool = True) -> None:
        super().__init__()
        self.mode = PoolMode(mode)
        self.flatten = flatten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the globally pooled map, (B, C) when flattening."""
        dims = tuple(range(2, x.ndim))
        if self.mode is PoolMode.AVG:
            out = x.mean(dim=dims, keepdim=not self.flatten)
        else:
            out = x.amax(dim=dims, keepdim=not self.flatten)
        return out  # (B, C) or (B, C, 1, ..., 1)

    def extra_repr(self) -> str:
        """Return the settings shown when the module is printed."""
        return f"mode={self.mode.value}, flatten={self.flatten}"


def global_avg_pool(*, flatten: bool = True) -> GlobalPool:
    """Return global average pooling."""
    return GlobalPool(PoolMode.AVG, flatten=flatten)


def global_max_pool(*, flatten: bool = True) -> GlobalPool:
    """Return global max pooling."""
    return GlobalPool(PoolMode.MAX, flatten=flatten)
