"""A model that takes pixels in [0, 1]: the run's normalisation inside, so baselines mean pictures."""

from __future__ import annotations

import torch
from torch import nn


class PixelModel(nn.Module):
    """`model` behind its input normalisation: forward takes images in [0, 1], layer names gain `model.`."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of pixel images (N, C, H, W) in [0, 1]."""
        return self.model((x - self.mean) / self.std)

    def feature_layers(self) -> list[str]:
        """Return the wrapped model's stages under this wrapper's names."""
        stages = getattr(self.model, "feature_layers", None)
        return [f"model.{name}" for name in stages()] if callable(stages) else []

    def get_classifier(self) -> nn.Module | None:
        """Return the wrapped model's final layer, when it names one."""
        getter = getattr(self.model, "get_classifier", None)
        return getter() if callable(getter) else None

    def layer_name(self, name: str) -> str:
        """Return this wrapper's name of the wrapped model's layer `name`."""
        return name if name.startswith("model.") else f"model.{name}"


class BoxScore(nn.Module):
    """A detector seen as a classifier of one box: forward returns the class scores (B, K) of candidate `index`.

    Every gradient method and CAM explains a class score of a classifier; a detection's score is
    its candidate's score for its class (cnnlab.models.detector), so wrapping the detector this way
    explains one box with any of them, the target being the box's class.
    """

    def __init__(self, detector: nn.Module, index: int) -> None:
        super().__init__()
        self.detector = detector
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the chosen candidate's class scores of images (B, C, H, W)."""
        return self.detector(x).candidates()[1][:, self.index]

    def feature_layers(self) -> list[str]:
        """Return the detector's stages under this wrapper's names."""
        stages = getattr(self.detector, "feature_layers", None)
        return [f"detector.{name}" for name in stages()] if callable(stages) else []
