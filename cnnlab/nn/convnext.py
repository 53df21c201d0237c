"""ConvNeXt's block and channel LayerNorm (Liu, Mao, Wu, Feichtenhofer, Darrell, Xie 2022, "A ConvNet for the 2020s").

Registered in torchvision's order (dwconv, norm, pwconv1, act, pwconv2, layer_scale) so its
weights map one to one onto cnnlab.models.convnext.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.nn.conv import depthwise_conv
from cnnlab.nn.regularization import DropPath

LAYER_NORM_EPS = 1e-6  # the paper's code and torchvision; PyTorch's default is 1e-5


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map at each pixel, as ConvNeXt normalises.

    GroupNorm(1, C) would normalise over C, H and W together: a different function.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x normalised over C independently at every (b, h, w)."""
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = super().forward(x)
        return x.permute(0, 3, 1, 2)  # (B, C, H, W)


class ConvNeXtBlock(nn.Module):
    """x + DropPath(gamma * Linear(GELU(Linear(LN(dwconv7x7(x)))))): the paper's Fig. 4 block."""

    def __init__(self, dim: int, drop_prob: float, layer_scale_init: float) -> None:
        super().__init__()
        # A 7x7 depth-wise conv first, like Swin's 7x7 windows placed before the MLP (Sec. 2.4).
        self.dwconv = depthwise_conv(dim, 7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        # Inverted bottleneck with expansion 4 (Sec. 2.3); 1x1 convs as Linear on channels-last.
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        # Layer scale: a learned per-channel gain, small at init, so each block starts near
        # the identity. Shape (C, 1, 1) as torchvision stores it, so its weights load unchanged.
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), layer_scale_init))
        self.drop_path = DropPath(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the block output, same shape as x: (B, C, H, W)."""
        residual = x
        x = self.dwconv(x)
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C): LayerNorm and Linear act on the last dim
        x = self.norm(x)
        x = self.pwconv1(x)  # (B, H, W, 4C)
        x = self.act(x)
        x = self.pwconv2(x)  # (B, H, W, C)
        x = x.permute(0, 3, 1, 2)  # (B, C, H, W)
        x = self.layer_scale * x
        return residual + self.drop_path(x)
