"""What every explanation method shares: the context it runs in, the result it returns, the public Attribution."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Attribution:
    """Maps of one method for a batch: on the input grid, and on the layer's grid for layer methods."""

    maps: torch.Tensor  # (N, C, H, W) per input channel, or (N, 1, H, W) for layer and superpixel methods
    method: str
    options: dict[str, Any]  # the resolved options, defaults included
    targets: torch.Tensor  # int64 (N,): the class each map explains
    seconds: float
    layer: str | None = None
    layer_maps: torch.Tensor | None = None  # (N, 1, h, w) on the layer's grid, before upsampling
    extras: dict[str, Any] = field(default_factory=dict)
    absolute: bool = False  # maps are magnitudes: the heat map takes the channel maximum (Simonyan et al. 2014)

    def heatmap(self) -> torch.Tensor:
        """Return one map per image (N, H, W): channels summed (saliency and its kin: their maximum)."""
        if self.maps.shape[1] == 1:
            return self.maps[:, 0]
        if self.absolute:
            return self.maps.amax(dim=1)
        return self.maps.sum(dim=1)

    def numpy(self) -> Any:
        """Return the heat maps as a float32 numpy array (N, H, W) on the host."""
        return self.heatmap().detach().float().cpu().numpy()



@dataclass(frozen=True)
class Context:
    """What a method needs besides its options: the model, its layer, the chunk size, the device."""

    model: nn.Module
    forward: Forward
    max_batch: int
    num_classes: int
    layer_name: str | None = None
    layer: nn.Module | None = None


@dataclass(frozen=True)
class Result:
    """What a method returns to `attribute`."""

    maps: torch.Tensor
    options: dict[str, Any]
    layer_maps: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class MethodRun(Protocol):
    """What a method is: a function of the context, the images and their targets, with its own keyword options."""

    def __call__(self, ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
        """Return the method's maps (N, C or 1, H, W) for `images` and the options it resolved."""
        ...
