"""Each explanation method's options as a typed, bounded dataclass, parsed as recipes are (cnnlab.runs.config).

`--option key=value` words reach a method only through `method_options`: a value of the wrong
type, a NaN, or one outside its bounds is a one-line error naming the method and the key. A
field left at None keeps the method's own default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.runs.config import build


def _bound(low: float | None = None, high: float | None = None, *, open_low: bool = False,
           choices: tuple[str, ...] = ()) -> Any:
    """Return a dataclass field defaulting to None (the method's default) with its bounds or its words.

    A field typed `str | float` takes a number or one of `choices`.
    """
    return field(default=None, metadata={"low": low, "high": high, "open_low": open_low, "choices": choices})


def _number_or_word(value: Any, where: str, words: tuple[str, ...]) -> float | str:
    """Return a number (YAML reads 1e-3 as a string) or one of `words`; refuse booleans, lists and mappings."""
    if isinstance(value, str) and value not in words:
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CnnlabError(f"{where}={value!r} is not one of {', '.join(words)} or a number")
    return float(value) if isinstance(value, int) else value


class Options:
    """Checks every set field against its bounds, as the recipe sections check theirs."""

    def __post_init__(self) -> None:
        for item in fields(self):  # type: ignore[arg-type]
            value, meta = getattr(self, item.name), item.metadata
            if value is None:
                continue
            where = f"option {item.name}"
            if "float" in str(item.type) and meta.get("choices"):  # a number or one of the words
                value = _number_or_word(value, where, meta["choices"])
                object.__setattr__(self, item.name, value)
            if isinstance(value, float) and not math.isfinite(value):
                raise CnnlabError(f"{where}={value} is not a finite number")
            if meta.get("choices") and isinstance(value, str) and value not in meta["choices"]:
                numbers = " or a number" if "float" in str(item.type) else ""
                raise CnnlabError(f"{where}={value!r} is not one of {', '.join(meta['choices'])}{numbers}")
            low, high = meta.get("low"), meta.get("high")
            if isinstance(value, int | float) and low is not None and (value < low or (meta.get("open_low") and value == low)):
                raise CnnlabError(f"{where}={value} must be {'>' if meta.get('open_low') else '>='} {low}")
            if isinstance(value, int | float) and high is not None and value > high:
                raise CnnlabError(f"{where}={value} must be <= {high}")

    def given(self) -> dict[str, Any]:
        """Return the options that were set, for the method's keyword arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}  # type: ignore[arg-type]


UPSAMPLE = ("resize", "field")
BASELINES = ("black", "blur", "noise")
FILLS = ("mean", "blur")
SUPERPIXELS = ("slic", "quickshift", "grid")


@dataclass(frozen=True)
class CamOptions(Options):
    """Options of the CAM family: how the layer's map is brought to the image."""

    upsample: str | None = _bound(choices=UPSAMPLE)


@dataclass(frozen=True)
class IntegratedGradientsOptions(Options):
    """Integrated Gradients (Sundararajan et al. 2017): the path integral's quadrature and baseline."""

    steps: int | None = _bound(1, 100_000)
    rule: str | None = _bound(choices=("gauss_legendre", "left", "right", "middle", "trapezoid"))
    baseline: str | float | None = _bound(choices=BASELINES)
    sigma: float | None = _bound(0, open_low=True)  # the blur baseline's Gaussian sigma in pixels
    low: float | None = None  # the noise baseline's range
    high: float | None = None


@dataclass(frozen=True)
class NoiseOptions(Options):
    """SmoothGrad-style sampling: how many noisy copies, and their noise as a fraction of the input range."""

    samples: int | None = _bound(1, 100_000)
    noise: float | None = _bound(0)


@dataclass(frozen=True)
class OcclusionOptions(Options):
    """Occlusion (Zeiler & Fergus 2014): the sliding patch and what fills it."""

    window: int | None = _bound(1)
    stride: int | None = _bound(1)
    fill: str | float | None = _bound(choices=FILLS)


@dataclass(frozen=True)
class RiseOptions(Options):
    """RISE (Petsiuk et al. 2018): random masks, their grid and keep probability."""

    masks: int | None = _bound(1, 1_000_000)
    cells: int | None = _bound(1)
    p: float | None = _bound(0, 1, open_low=True)


@dataclass(frozen=True)
class LimeOptions(Options):
    """LIME (Ribeiro et al. 2016): samples, superpixels, the locality kernel and the ridge penalty."""

    samples: int | None = _bound(1, 1_000_000)
    segments: int | None = _bound(1)
    superpixels: str | None = _bound(choices=SUPERPIXELS)
    kernel_width: float | None = _bound(0, open_low=True)
    ridge: float | None = _bound(0)


@dataclass(frozen=True)
class KernelShapOptions(Options):
    """KernelSHAP (Lundberg & Lee 2017): coalition samples and superpixels."""

    samples: int | None = _bound(1, 1_000_000)
    segments: int | None = _bound(1)
    superpixels: str | None = _bound(choices=SUPERPIXELS)


@dataclass(frozen=True)
class LrpOptions(Options):
    """LRP (Bach et al. 2015): the composite, per-layer-kind rules and their parameters."""

    composite: str | None = None  # checked against the composites by the method
    first: str | None = None
    conv: str | None = None
    linear: str | None = None
    epsilon: float | None = _bound(0, open_low=True)
    stabilizer: float | None = _bound(0, open_low=True)
    gamma: float | None = _bound(0)
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class DeepLiftOptions(Options):
    """DeepLIFT (Shrikumar et al. 2017): the reference input."""

    baseline: str | float | None = _bound(choices=BASELINES)
    sigma: float | None = _bound(0, open_low=True)  # the blur baseline's Gaussian sigma in pixels
    low: float | None = None  # the noise baseline's range
    high: float | None = None


CAMS = ("cam", "gradcam", "gradcam_pp", "xgradcam", "hirescam", "layercam", "scorecam", "eigencam", "guided_gradcam")
NOISY = ("smoothgrad", "smoothgrad_sq", "vargrad", "expected_gradients", "gradient_shap")
OPTIONS: dict[str, type[Options]] = {
    **dict.fromkeys(CAMS, CamOptions), **dict.fromkeys(NOISY, NoiseOptions),
    "integrated_gradients": IntegratedGradientsOptions, "occlusion": OcclusionOptions, "rise": RiseOptions,
    "lime": LimeOptions, "kernel_shap": KernelShapOptions, "lrp": LrpOptions, "deeplift": DeepLiftOptions,
}
SEEDED = frozenset({*NOISY, "rise", "lime", "kernel_shap"})


def keys_of(method: str) -> frozenset[str]:
    """Return the option keys `method` takes."""
    kind = OPTIONS.get(method)
    return frozenset(f.name for f in fields(kind)) if kind else frozenset()


def method_options(method: str, pairs: dict[str, Any], seed: int | None = None) -> dict[str, Any]:
    """Return the keyword options `method` takes from `pairs` (typed and bounded), plus its seed when it samples."""
    kind = OPTIONS.get(method)
    taken = {k: v for k, v in pairs.items() if k in keys_of(method)}
    if kind is not None:
        try:
            taken = build(kind, taken, "", f"{method} option").given()
        except CnnlabError as error:
            message = str(error)
            raise CnnlabError(message if message.startswith(("unknown", method)) else f"{method} {message}") from None
    if method in SEEDED and seed is not None:
        taken["seed"] = seed
    return taken


def check_pairs(methods: list[str] | tuple[str, ...], pairs: dict[str, Any]) -> None:
    """Raise one line for a key no chosen method takes, or a value a method refuses."""
    for key in pairs:
        if not any(key in keys_of(m) for m in methods):
            raise CnnlabError(f"no chosen method takes the option {key!r} ({', '.join(methods)}): check its spelling")
    for method in methods:
        method_options(method, pairs)
