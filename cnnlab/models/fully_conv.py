"""Fully convolutional evaluation (Simonyan & Zisserman 2015, Sec. 3.2): a classifier's dense head as convolutions.

The first fully connected layer after the flatten becomes a convolution whose kernel is the
feature map it read at the training size (VGG's fc6: 7x7), every later one a 1x1 convolution,
so the network slides over a larger image and returns a map of class scores, one per window.
Global average pooling before the head is moved after it (a linear map commutes with the mean),
so such a network returns its map and the map's mean is its logits. The conversion works on a
copy: the model given is left as it was.
"""

from __future__ import annotations

import contextlib
import copy
import operator

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from cnnlab.devices import device_of
from cnnlab.errors import CnnlabError
from cnnlab.nn.pooling import GlobalPool, PoolMode

ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Tanh,
               nn.Sigmoid, nn.Mish, nn.Dropout, nn.AlphaDropout, nn.Identity)
ELEMENTWISE_FUNCTIONS = (F.relu, torch.relu, F.dropout, F.gelu, F.silu, torch.tanh, torch.sigmoid)
FLATTENS = ("flatten", "view", "reshape")


class _Head(nn.Module):
    """forward_head as a module of its own, so torch.fx can trace it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the classifier's logits from a feature map."""
        return self.model.forward_head(x)


class _Tracer(torch.fx.Tracer):
    """Keeps cnnlab's global pooling whole: its forward reads the rank of its input, which tracing cannot."""

    def is_leaf_module(self, module: nn.Module, name: str) -> bool:
        """Return whether `module` stays one node."""
        return isinstance(module, GlobalPool) or super().is_leaf_module(module, name)


class FullyConvolutional(nn.Module):
    """A classifier whose head is convolutions: images of any size at least the training size give a score map."""

    def __init__(self, model: nn.Module, head: torch.fx.GraphModule, averaged: bool) -> None:
        super().__init__()
        self.body = model
        self.head = head
        self.averaged = averaged  # the original pooled globally: its logits are the map's mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class scores (B, K, h, w): one per window of the training size (1x1 at that size without global pooling)."""
        return self.head(self.body.forward_features(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Return (B, K) logits: the map's mean with global pooling, else the map itself at the training size."""
        scores = self(x)
        if self.averaged:
            return scores.mean(dim=(2, 3))
        if scores.shape[2:] != (1, 1):
            raise CnnlabError(f"the score map is {scores.shape[2]}x{scores.shape[3]}: logits() needs the training size; "
                              "call the model for the map")
        return scores.flatten(1)


def _refuse(what: str) -> CnnlabError:
    return CnnlabError(f"cannot make this head fully convolutional: {what}; heads of Linear layers, element-wise "
                       "activations, dropout, flatten and average pooling convert")


def fully_convolutional(model: nn.Module, input_size: tuple[int, int, int]) -> FullyConvolutional:
    """Return a copy of the classifier `model` with its head as convolutions, checked at `input_size` (C, H, W) to 1e-5."""
    if not hasattr(model, "forward_features") or not hasattr(model, "forward_head"):
        raise CnnlabError(f"{type(model).__name__} has no forward_features/forward_head: give a zoo classifier")
    body = copy.deepcopy(model).eval()
    probe = torch.randn(2, *input_size, device=device_of(body))
    with torch.no_grad(), _fp32_convolutions():
        features = body.forward_features(probe)
        expected = body.forward_head(features)
    traced = torch.fx.GraphModule(_Head(body), _Tracer().trace(_Head(body)))
    torch.fx.passes.shape_prop.ShapeProp(traced).propagate(features)
    averaged = _convert(traced)
    converted = FullyConvolutional(body, traced, averaged)
    with torch.no_grad(), _fp32_convolutions():
        got = converted.logits(probe)
    if got.shape != expected.shape or not torch.allclose(got, expected, atol=1e-5, rtol=1e-5):
        raise _refuse("its logits change when the head becomes convolutions (a non-linear layer after global pooling?)")
    return converted


def _fp32_convolutions() -> contextlib.AbstractContextManager:
    """Return a context with cuDNN's TF32 convolutions off, the user's other cuDNN flags kept.

    On Ampere and later cuDNN convolves in TF32 by default while the Linear head multiplies in fp32:
    the converted head would miss the 1e-5 check by about 1e-3 for the precision alone.
    """
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=False)


def _convert(graph_module: torch.fx.GraphModule) -> bool:
    """Rewrite the traced head in place (Linear -> Conv2d, flatten and pooling out); return whether it pooled globally."""
    state: dict[torch.fx.Node, tuple[int, int, int] | None] = {}  # (C, h, w) a flatten folded away, else None
    averaged = False
    removed: list[tuple[torch.fx.Node, torch.fx.Node]] = []  # erased at the end: later nodes read their state
    for node in list(graph_module.graph.nodes):
        if node.op == "placeholder":
            state[node] = None
            continue
        if node.op == "output":
            break
        source = node.args[0] if node.args else None
        shape = tuple(source.meta["tensor_meta"].shape) if isinstance(source, torch.fx.Node) else ()
        module = graph_module.get_submodule(node.target) if node.op == "call_module" else None
        if isinstance(module, nn.Linear):
            folded = state.get(source)
            channels, height, width = folded if folded is not None else (module.in_features, 1, 1)
            conv = nn.Conv2d(channels, module.out_features, (height, width), bias=module.bias is not None)
            conv.weight.data.copy_(module.weight.detach().view(module.out_features, channels, height, width))
            if module.bias is not None:
                conv.bias.data.copy_(module.bias.detach())
            conv.to(module.weight.device)
            _set_module(graph_module, node.target, conv)
            state[node] = None
            continue
        removable = (
            (node.op == "call_method" and node.target in FLATTENS)
            or (node.op == "call_function" and node.target is torch.flatten)
            or isinstance(module, nn.Flatten)
        )
        if removable and len(shape) == 4:
            state[node] = shape[1:]  # (C, h, w): the next Linear reads this window
        elif isinstance(module, GlobalPool | nn.AdaptiveAvgPool2d) and len(shape) == 4:
            out = tuple(node.meta["tensor_meta"].shape)
            if isinstance(module, GlobalPool) and module.mode is PoolMode.MAX:
                raise _refuse("global max pooling does not commute with the layers after it")
            if isinstance(module, nn.AdaptiveAvgPool2d) and out[2:] == shape[2:]:
                pass  # the identity at the training size: at larger sizes the window slides instead
            elif (isinstance(module, GlobalPool) or out[2:] == (1, 1)) and not averaged:
                averaged = True
            else:
                raise _refuse(f"adaptive pooling resizes the {shape[2]}x{shape[3]} map to {out[2]}x{out[3]}")
            state[node] = None
        elif (isinstance(module, ELEMENTWISE)
              or (node.op == "call_function" and node.target in ELEMENTWISE_FUNCTIONS)):
            state[node] = state.get(source)
            continue
        elif node.op == "call_function" and node.target is operator.getitem:
            raise _refuse("it indexes its input")
        else:
            raise _refuse(f"{node.op} {getattr(node.target, '__name__', node.target)!s}")
        removed.append((node, source))
    for node, source in reversed(removed):
        node.replace_all_uses_with(source)
        graph_module.graph.erase_node(node)
    graph_module.graph.lint()
    graph_module.recompile()
    return averaged


def _set_module(graph_module: torch.fx.GraphModule, target: str, module: nn.Module) -> None:
    """Put `module` at the dotted `target` of the traced head (its copy of the model's layers)."""
    parent, _, name = target.rpartition(".")
    setattr(graph_module.get_submodule(parent) if parent else graph_module, name, module)
