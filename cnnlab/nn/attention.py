"""Channel attention: Squeeze-and-Excitation (Hu et al. 2018)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from cnnlab.errors import CnnlabError


class SqueezeExcitation(nn.Module):
    """Squeeze (global average pool) -> FC reduce -> act -> FC expand -> gate, then rescale channels.

    The two FCs are 1x1 convolutions, so the block adds 2 C C_r + C_r + C parameters with biases
    (C_r = C / reduction; the paper uses reduction 16).
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        *,
        reduced_channels: int | None = None,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
        gate_layer: Callable[..., nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        reduced = reduced_channels if reduced_channels is not None else channels // reduction
        if reduced < 1:
            raise CnnlabError(
                f"SE reduction {reduction} leaves no channels of {channels}: "
                "use a smaller reduction or pass reduced_channels"
            )
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(reduced, channels, 1)
        self.gate = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x with each channel rescaled by its learned gate in (0, 1)."""
        scale = x.mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1): the squeeze
        scale = self.fc1(scale)  # (B, C_r, 1, 1)
        scale = self.act(scale)
        scale = self.fc2(scale)  # (B, C, 1, 1)
        scale = self.gate(scale)
        return x * scale
