"""The model registry: one builder function per variant, registered with its paper and sizes.

`@register_model` refuses a name already taken (torchvision's `_api.py` does the same), so two
families can never silently shadow each other. `create_model` also builds `tv/<name>` and
`timm/<name>` models, wrapped to honour the same contract as the zoo's own.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model variant."""

    name: str  # registry name, e.g. "resnet50"
    family: str  # e.g. "resnet"; one file in cnnlab/models per family
    paper: str  # authors and title of the paper the variant follows
    year: int  # publication year of that paper
    builder: Callable[..., nn.Module]  # builder(num_classes=..., in_chans=..., **kwargs)
    input_size: tuple[int, int, int] = (3, 224, 224)  # default (C, H, W)
    small_input: bool = False  # True when the variant is designed for 32x32 images (CIFAR)
    min_train_size: int = 32  # smallest H = W that trains (Inception v3 with aux head: 299)
    min_eval_size: int = 32  # smallest H = W that evaluates
    classifier: bool = True  # False for dense-prediction models (U-Net) and detectors: no classifier contract
    detector: bool = False  # True when forward returns a DetectorOutput (cnnlab.models.detector)
    torchvision: str | None = None  # torchvision's name for the same network, if it has one
    default_classes: int = 1000  # classes of the paper's setting


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    paper: str,
    year: int,
    input_size: tuple[int, int, int] = (3, 224, 224),
    small_input: bool = False,
    min_train_size: int = 32,
    min_eval_size: int = 32,
    classifier: bool = True,
    detector: bool = False,
    torchvision: str | None = None,
    default_classes: int = 1000,
    name: str | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Return a decorator that registers a builder under its function name (or `name`)."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"model name {key!r} is already registered by {_REGISTRY[key].family}")
        _REGISTRY[key] = ModelInfo(
            name=key,
            family=family,
            paper=paper,
            year=year,
            builder=builder,
            input_size=input_size,
            small_input=small_input,
            min_train_size=min_train_size,
            min_eval_size=min_eval_size,
            classifier=classifier,
            detector=detector,
            torchvision=torchvision,
            default_classes=default_classes,
        )
        return builder

    return decorator


def _ensure_loaded() -> None:
    # Importing the package imports every family file, which fills the registry.
    import cnnlab.models  # noqa: F401


def list_models(pattern: str | None = None) -> list[str]:
    """Return the sorted registered names, filtered by a shell-style pattern such as 'resnet*'."""
    _ensure_loaded()
    names = sorted(_REGISTRY)
    return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]


def model_info(name: str) -> ModelInfo:
    """Return the registry entry of `name`, or raise naming how to list the known ones."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise CnnlabError(
            f"unknown model {name!r}{hint}: `cnnlab models` lists the zoo; "
            "tv/<name> and timm/<name> reach torchvision and timm"
        ) from None


def is_detector(name: str) -> bool:
    """Return whether `name` (a zoo name or tv/<name>) is a detector, whose forward returns a DetectorOutput."""
    if name.startswith("tv/"):
        from cnnlab.models.tv_detection import TV_DETECTORS

        return name.removeprefix("tv/") in TV_DETECTORS
    return not name.startswith("timm/") and model_info(name).detector


def create_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    input_size: int | None = None,
    **kwargs: object,
) -> nn.Module:
    """Return a freshly initialised model: a zoo name, `tv/<name>` or `timm/<name>`.

    `input_size` (the square side a run trains at) reaches detectors only: their heads read the
    backbone's stages at that size, and torchvision's resize their input to it.
    """
    if input_size is not None and is_detector(name):
        kwargs["input_size"] = input_size
    if name.startswith("tv/") and is_detector(name):
        from cnnlab.models.tv_detection import create_tv_detector

        return create_tv_detector(name.removeprefix("tv/"), num_classes=num_classes or 91, **kwargs)
    if name.startswith(("tv/", "timm/")):
        from cnnlab.models.adapters import create_external

        return create_external(name, num_classes=num_classes, in_chans=in_chans, **kwargs)
    info = model_info(name)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    try:
        return info.builder(**kwargs)
    except TypeError as error:
        # Only a keyword the user gave that some signature on the way refuses is their mistake; any other
        # TypeError raised while building is a bug in the builder, and keeps its traceback.
        words = str(error)
        if any(f"'{key}'" in words for key in kwargs) and ("unexpected keyword" in words or "multiple values" in words):
            raise CnnlabError(f"{name} does not take these options ({error})") from None
        raise
