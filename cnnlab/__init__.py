"""cnnlab: design, inspect, train, evaluate and look inside convolutional networks.

The package is a house of floors; imports flow one way, bottom up, a lower floor never imports a
higher one, and the two wings of one floor never import each other (tests/test_house.py reads the
imports to keep it so):

    errors <- devices <- arithmetic <- nn <- models <- data <- inspect <- runs <- attacks
    <- {train | explain} <- workflows <- report <- cli

`import cnnlab` stays cheap: subpackages import torch only when they are imported themselves,
and `cnnlab.create_model` / `cnnlab.list_models` load the zoo on first use (as timm's do).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# The house, bottom up: each level a set of sibling packages. A module imports only from lower levels and its
# own package; siblings on one level (train and explain, the two wings) never import each other.
FLOORS = (("errors",), ("devices",), ("arithmetic",), ("nn",), ("models",), ("data",), ("inspect",), ("runs",),
          ("attacks",), ("train", "explain"), ("workflows",), ("report",), ("cli",))
_LAZY = {"create_model": "cnnlab.models.registry", "list_models": "cnnlab.models.registry",
         "model_info": "cnnlab.models.registry", "load_run": "cnnlab.runs.load"}


def __getattr__(name: str) -> Any:
    """Return a lazily imported top-level function (create_model, list_models, model_info, load_run)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    """Return the module's names, the lazy ones included."""
    return sorted([*globals(), *_LAZY])
