"""The one place where strings become layer classes (timm's `create_act` idea).

Everything else in cnnlab takes layer classes (`act_layer=nn.ReLU`); the CLI and YAML recipes
hold names, and this module turns a name into a class at that edge.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from cnnlab.errors import CnnlabError

LayerFactory = Callable[..., nn.Module]

_ACTIVATIONS: dict[str, LayerFactory] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,  # Ramachandran et al. 2017 named it swish; PyTorch calls it SiLU
    "mish": nn.Mish,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}

_NORMS: dict[str, dict[int, LayerFactory]] = {
    "batch": {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d},
    "instance": {
        1: partial(nn.InstanceNorm1d, affine=True),
        2: partial(nn.InstanceNorm2d, affine=True),
        3: partial(nn.InstanceNorm3d, affine=True),
    },
    # 32 groups is Wu & He (2018)'s default; fewer when 32 does not divide the channels.
    "group": {d: (lambda channels: nn.GroupNorm(_group_count(channels), channels)) for d in (1, 2, 3)},
    # One group normalises over (C, H, W) per sample: LayerNorm for conv feature maps.
    "layer": {d: (lambda channels: nn.GroupNorm(1, channels)) for d in (1, 2, 3)},
}


def _group_count(channels: int, preferred: int = 32) -> int:
    """Return the largest group count <= `preferred` that divides `channels`."""
    return next(g for g in range(min(preferred, channels), 0, -1) if channels % g == 0)


def create_act(name: str) -> LayerFactory:
    """Return the activation class named `name` (relu, gelu, silu, ...)."""
    try:
        return _ACTIVATIONS[name.lower()]
    except KeyError:
        raise CnnlabError(
            f"unknown activation {name!r}: use one of {', '.join(sorted(_ACTIVATIONS))}"
        ) from None


def build_act(act_layer: LayerFactory, inplace: bool = True) -> nn.Module:
    """Return an instance of `act_layer`, in place when asked and the layer supports it."""
    if inplace and "inplace" not in getattr(act_layer, "keywords", {}):  # partial(nn.ReLU, inplace=False) wins
        # Only a layer that takes `inplace` can do it; GELU, Sigmoid and Tanh cannot.
        try:
            return act_layer(inplace=True)
        except TypeError:
            pass
    return act_layer()


def create_norm(name: str, dims: int = 2) -> LayerFactory | None:
    """Return the normalisation class named `name` for `dims` spatial dims, or None for 'none'."""
    if name.lower() == "none":
        return None
    try:
        return _NORMS[name.lower()][dims]
    except KeyError:
        raise CnnlabError(
            f"unknown normalisation {name!r} for {dims}D: use one of "
            f"{', '.join(sorted(_NORMS))} or none"
        ) from None
