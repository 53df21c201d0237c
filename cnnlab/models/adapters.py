"""torchvision and timm models behind the zoo's classifier contract (`tv/<name>`, `timm/<name>`).

The adapter keeps the wrapped network as `self.model` and adds forward_features /
forward_head / feature_layers / reset_classifier, so summaries, explanations and training
treat a torchvision or timm network exactly like a zoo model. No weights are downloaded:
bring pretrained torchvision weights from a local file with `load_torchvision_state_dict`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.base import AuxOutput, Classifier

_SKIP_AS_STAGE = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Dropout, nn.MaxPool2d, nn.AvgPool2d,
                  nn.AdaptiveAvgPool2d, nn.BatchNorm2d, nn.Identity)


@contextmanager
def _swapped(module: nn.Module, name: str, replacement: nn.Module) -> Iterator[None]:
    """Temporarily replace a child module (used to run only the head of a network)."""
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def _last_classifier_path(model: nn.Module) -> str:
    """Return the dotted path of the last Linear (else last Conv2d): the logit layer."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1]
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise CnnlabError(f"{type(model).__name__} has no Linear or Conv2d classifier to adapt")
    return convs[-1]


class TorchvisionClassifier(Classifier):
    """A torchvision classifier with the zoo's contract; the network itself is `self.model`."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.model = model
        self.tv_name = name
        self.classifier_path = "model." + _last_classifier_path(model)
        head = self.get_classifier()
        self.num_classes = getattr(head, "out_features", None) or head.out_channels
        self.num_features = getattr(head, "in_features", None) or head.in_channels
        self._is_resnet = all(hasattr(model, n) for n in ("conv1", "layer4", "fc"))
        self._has_features = hasattr(model, "features") and not self._is_resnet
        self.stage_names = tuple("model." + n for n in self._stages())

    def _stages(self) -> list[str]:
        if self._is_resnet:
            return ["layer1", "layer2", "layer3", "layer4"]
        if self._has_features:
            names = [n for n, m in self.model.features.named_children() if not isinstance(m, _SKIP_AS_STAGE)]
            dense = [n for n in names if n.startswith("denseblock")]
            return ["features." + n for n in (dense or names)]
        # GoogLeNet / Inception: the inception modules are the stages.
        return [n for n, _ in self.model.named_children() if n.startswith(("inception", "Mixed"))]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last unpooled feature map of the wrapped network."""
        if self._has_features:
            return self.model.features(x)
        if self._is_resnet:
            m = self.model
            x = m.maxpool(m.relu(m.bn1(m.conv1(x))))  # (B, 64, H/4, W/4)
            return m.layer4(m.layer3(m.layer2(m.layer1(x))))
        captured: dict[str, torch.Tensor] = {}

        class _Stop(Exception):
            pass

        def grab(module: nn.Module, args: tuple) -> None:
            captured["x"] = args[0]
            raise _Stop

        handle = self.model.avgpool.register_forward_pre_hook(grab)
        try:
            self.model(x)
        except _Stop:
            pass
        finally:
            handle.remove()
        return captured["x"]

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits from the map of forward_features, through the wrapped network's own head."""
        if self._has_features:
            with _swapped(self.model, "features", nn.Identity()):
                return self.model(x)
        x = self.model.avgpool(x).flatten(1)  # (B, C)
        if hasattr(self.model, "dropout"):
            x = self.model.dropout(x)
        return self.model.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | AuxOutput:
        """Return logits; in training mode with auxiliary heads, an AuxOutput (main head first)."""
        out = self.model(x)
        if isinstance(out, tuple) and hasattr(out, "_fields"):
            # torchvision lists GoogLeNet's aux heads deepest first: (logits, aux2, aux1).
            return AuxOutput(out[0], tuple(reversed(out[1:])))
        return out


class TimmClassifier(Classifier):
    """A timm model with the zoo's contract; timm already has most of it, so this delegates."""

    def __init__(self, model: nn.Module, name: str) -> None:
        super().__init__()
        self.model = model
        self.timm_name = name
        self.num_classes = model.num_classes
        self.num_features = model.num_features
        self.stage_names = tuple("model." + info["module"] for info in getattr(model, "feature_info", []))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Return timm's forward_features: the unpooled map."""
        return self.model.forward_features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Return timm's forward_head: pooled logits."""
        return self.model.forward_head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the logits of the wrapped timm model."""
        return self.model(x)

    def get_classifier(self) -> nn.Module:
        """Return timm's classifier layer."""
        return self.model.get_classifier()

    def reset_classifier(self, num_classes: int) -> None:
        """Replace timm's classifier with one of `num_classes` outputs."""
        self.model.reset_classifier(num_classes)
        self.num_classes = num_classes


def _replace_first_conv(model: nn.Module, in_chans: int) -> None:
    """Swap the first Conv2d for one that reads `in_chans` channels (freshly initialised)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            new = nn.Conv2d(in_chans, module.out_channels, module.kernel_size, module.stride,
                            module.padding, module.dilation, module.groups, module.bias is not None)
            parent_path, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_path) if parent_path else model, attr, new)
            return


def create_external(name: str, num_classes: int | None = None, in_chans: int | None = None, **kwargs: Any) -> Classifier:
    """Return `tv/<name>` or `timm/<name>` wrapped in the classifier contract, without weights."""
    source, _, model_name = name.partition("/")
    if source == "tv":
        import torchvision

        if model_name not in torchvision.models.list_models(module=torchvision.models):
            raise CnnlabError(f"torchvision has no classification model {model_name!r}: see torchvision.models.list_models()")
        if model_name in ("googlenet", "inception_v3"):
            kwargs.setdefault("init_weights", True)  # skips torchvision's slow scipy-based init
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        model = torchvision.models.get_model(model_name, weights=None, **kwargs)
        if in_chans is not None and in_chans != 3:
            _replace_first_conv(model, in_chans)
        return TorchvisionClassifier(model, model_name)
    try:
        import timm
    except ImportError:
        raise CnnlabError(f"{name} needs timm: pip install 'cnnlab[timm]'") from None
    if model_name not in timm.list_models():
        raise CnnlabError(f"timm has no model {model_name!r}: see timm.list_models()")
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    return TimmClassifier(timm.create_model(model_name, pretrained=False, **kwargs), model_name)
