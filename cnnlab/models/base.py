"""The classifier contract every zoo model honours, so every tool of cnnlab works on every model.

forward(x) == forward_head(forward_features(x)); forward_features returns the unpooled map
(B, C, H, W); feature_layers() names the stages (dotted module paths) that explainability
code hooks into; reset_classifier(n) swaps the final layer for one with n outputs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


def init_conv_bn(model: nn.Module) -> None:
    """Initialise convs with He et al. (2015) normal fan-out and BatchNorm as the identity, in place."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class AuxOutput(NamedTuple):
    """Training-mode output of a model with auxiliary classifiers (GoogLeNet, Inception v3)."""

    logits: torch.Tensor  # (B, num_classes) of the main head
    aux: tuple[torch.Tensor, ...]  # (B, num_classes) of each auxiliary head, input to output order


class FeatureInfo(NamedTuple):
    """One stage of a network, as detection and segmentation heads read it (timm's feature_info)."""

    module: str  # dotted path of the stage
    channels: int  # channels of its (B, C, H, W) map
    reduction: int  # input side / map side: the stage's total stride


def feature_info(model: nn.Module, stages: list[str], input_size: tuple[int, int, int]) -> list[FeatureInfo]:
    """Return channels and reduction of each stage, traced on the meta device: no weights copied, none changed.

    The model's parameters and buffers are swapped for meta tensors only inside the call
    (torch.func.functional_call), so a BatchNorm in training mode updates nothing of the model's,
    and the hooks that read the maps are removed before it returns.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    try:
        for name in stages:

            def record(_module: nn.Module, _inputs: object, out: torch.Tensor, name: str = name) -> None:
                shapes.setdefault(name, tuple(out.shape))  # returns None: a hook's return value would replace `out`

            handles.append(model.get_submodule(name).register_forward_hook(record))
        tensors = {k: torch.empty_like(v, device="meta") for k, v in (*model.named_parameters(), *model.named_buffers())}
        with torch.no_grad():
            # Two images: a BatchNorm in training mode needs more than one value per channel (Inception's aux head).
            torch.func.functional_call(model, tensors, (torch.zeros(2, *input_size, device="meta"),))
    finally:
        for handle in handles:
            handle.remove()
    info = []
    for name in stages:
        shape = shapes.get(name)
        if shape is None or len(shape) != 4:
            raise ValueError(f"stage {name} gives {shape or 'no output'}, not a (B, C, H, W) map")
        info.append(FeatureInfo(name, shape[1], round(input_size[1] / shape[2])))
    return info


class Classifier(nn.Module):
    """Base of zoo classifiers; subclasses set `classifier_path` and implement the two halves."""

    #: Dotted path of the final Linear (or 1x1 Conv) that produces the logits.
    classifier_path: str = "fc"
    #: Dotted paths of the stages, shallow to deep; each yields a (B, C, H, W) map.
    stage_names: tuple[str, ...] = ()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last unpooled feature map (B, C, H, W)."""
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, num_classes) from the feature map of forward_features."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits (B, num_classes) for images (B, C, H, W)."""
        return self.forward_head(self.forward_features(x))

    def feature_layers(self) -> list[str]:
        """Return the dotted names of the stages, shallow to deep."""
        return list(self.stage_names)

    def feature_info(self, input_size: tuple[int, int, int] = (3, 224, 224)) -> list[FeatureInfo]:
        """Return each stage's module, channels and reduction at `input_size` (C, H, W), shallow to deep."""
        return feature_info(self, self.feature_layers(), input_size)

    def get_classifier(self) -> nn.Module:
        """Return the final layer that produces the logits."""
        return self.get_submodule(self.classifier_path)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final layer by a freshly initialised one with `num_classes` outputs."""
        old = self.get_classifier()
        if isinstance(old, nn.Linear):
            new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
        elif isinstance(old, nn.Conv2d):
            new = nn.Conv2d(old.in_channels, num_classes, old.kernel_size, old.stride, old.padding, bias=old.bias is not None)
        else:
            raise TypeError(f"cannot reset a {type(old).__name__} classifier")
        new = new.to(device=old.weight.device, dtype=old.weight.dtype)
        parent_path, _, attr = self.classifier_path.rpartition(".")
        parent = self.get_submodule(parent_path) if parent_path else self
        setattr(parent, attr, new)
        self.num_classes = num_classes
