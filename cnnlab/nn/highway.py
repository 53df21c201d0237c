"""The convolutional highway layer (Srivastava, Greff, Schmidhuber 2015, "Training Very Deep Networks", Eq. 3).

y = H(x) * T(x) + x * (1 - T(x)), with T = sigmoid(conv(x) + b_T); a negative b_T makes the
layer start close to carrying x through (Sec. 2.2).
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.nn.conv import ConvNormAct, conv


class HighwayLayer(nn.Module):
    """y = H(x) * T(x) + x * (1 - T(x)) with H = conv-BN-ReLU, T = sigmoid(conv(x) + b_T)."""

    def __init__(self, channels: int, kernel_size: int = 3, gate_bias: float = -2.0) -> None:
        super().__init__()
        padding = kernel_size // 2  # zero padding keeps H and T the size of x (Sec. 4)
        self.transform = ConvNormAct(channels, channels, kernel_size, padding=padding)
        self.gate = conv(channels, channels, kernel_size, padding=padding, bias=True)
        nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the gated mix of H(x) and x, the same shape as x."""
        h = self.transform(x)
        t = torch.sigmoid(self.gate(x))  # transform gate T(x), Eq. 3
        return h * t + x * (1 - t)  # carry gate C = 1 - T
