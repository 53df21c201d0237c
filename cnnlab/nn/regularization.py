"""Structured dropout for convolutional maps: spatial dropout, DropBlock, stochastic depth.

Plain dropout on a conv map barely regularises, since neighbouring pixels carry the same
information (Tompson et al. 2015); these variants drop whole channels, blocks or residual branches.
All are the identity in eval mode and rescale in training so the expected activation is unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError


def _check_probability(p: float) -> None:
    if not 0.0 <= p < 1.0:
        raise CnnlabError(f"drop probability must lie in [0, 1), got {p}")


class SpatialDropout(nn.Module):
    """Drop whole channels of a (B, C, ...) map with probability p (Tompson et al. 2015)."""

    def __init__(self, p: float = 0.1) -> None:
        super().__init__()
        _check_probability(p)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x with whole channels zeroed at rate p (training) or x itself (eval)."""
        if not self.training or self.p == 0.0:
            return x
        mask_shape = (x.shape[0], x.shape[1]) + (1,) * (x.ndim - 2)  # (B, C, 1, ..., 1)
        keep = torch.empty(mask_shape, device=x.device, dtype=x.dtype).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        """Return the settings shown when the module is printed."""
        return f"p={self.p}"


class DropBlock2d(nn.Module):
    """DropBlock (Ghiasi et al. 2018): drop contiguous block_size x block_size squares.

    Block centres are sampled at rate gamma inside the region where a whole block fits
    (their Eq. 1), so the expected dropped fraction is about `p`; the kept units are rescaled
    by count(mask) / count(kept), as the paper's Algorithm 1 normalises.
    """

    def __init__(self, p: float = 0.1, block_size: int = 7) -> None:
        super().__init__()
        _check_probability(p)
        if block_size < 1:
            raise CnnlabError(f"block_size must be >= 1, got {block_size}")
        self.p = p
        self.block_size = block_size

    def gamma(self, height: int, width: int) -> float:
        """Return the seed rate of Eq. 1: p / b^2 * HW / ((H - b + 1)(W - b + 1))."""
        block = min(self.block_size, height, width)
        valid = (height - block + 1) * (width - block + 1)
        return self.p / (block * block) * (height * width) / valid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x with block_size squares dropped (training) or x itself (eval)."""
        if not self.training or self.p == 0.0:
            return x
        batch, channels, height, width = x.shape
        block = min(self.block_size, height, width)
        gamma = self.gamma(height, width)
        valid_h, valid_w = height - block + 1, width - block + 1
        seeds = torch.zeros(batch, channels, height, width, device=x.device, dtype=x.dtype)
        # Seeds only where the block stays inside the map; block `top-left` anchored at the seed.
        seeds[:, :, :valid_h, :valid_w] = torch.bernoulli(
            torch.full((batch, channels, valid_h, valid_w), gamma, device=x.device, dtype=x.dtype)
        )
        # Max-pooling the seeds with a block-sized window spreads each seed over its block.
        dropped = F.max_pool2d(
            F.pad(seeds, (block - 1, 0, block - 1, 0)), block, stride=1
        )  # (B, C, H, W)
        keep = 1.0 - dropped
        kept = keep.sum()
        scale = keep.numel() / kept.clamp_min(1.0)
        return x * keep * scale

    def extra_repr(self) -> str:
        """Return the settings shown when the module is printed."""
        return f"p={self.p}, block_size={self.block_size}"


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Return x with whole samples zeroed at rate p and the rest scaled by 1/(1-p)."""
    if not training or p == 0.0:
        return x
    mask_shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # (B, 1, ..., 1)
    keep = torch.empty(mask_shape, device=x.device, dtype=x.dtype).bernoulli_(1 - p)
    return x * keep / (1 - p)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a residual branch per sample with probability p."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        _check_probability(p)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x with whole samples dropped (training) or x itself (eval)."""
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        """Return the settings shown when the module is printed."""
        return f"p={self.p}"
