"""The method registry: each method registers its function, family and typed options once, under a unique name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.types import MethodRun


@dataclass(frozen=True)
class Method:
    """A registered method: its function, its family and whether it needs a layer."""

    name: str
    run: MethodRun
    family: str  # gradient, cam, perturbation, lrp
    needs_layer: bool = False
    absolute: bool = False  # its maps are magnitudes (saliency, SmoothGrad squared, VarGrad)
    options: type | None = None  # its typed options dataclass (kit.options.Options), None when it takes none
    seeded: bool = False  # it draws random numbers: the command's --seed reaches it


METHODS: dict[str, Method] = {}


def register(name: str, family: str, *, needs_layer: bool = False, absolute: bool = False,
             options: type | None = None, seeded: bool = False) -> Callable[[MethodRun], MethodRun]:
    """Return a decorator that registers a method under `name` (names are unique) with its options dataclass."""
    def add(run: MethodRun) -> MethodRun:
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        METHODS[name] = Method(name, run, family, needs_layer, absolute, options, seeded)
        return run
    return add


def check_options(method: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    """Raise a one-line error when `options` holds a key `method` does not take."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise CnnlabError(f"{method} takes no option {unknown[0]!r}: its options are {', '.join(allowed) or 'none'}")

