"""Policies: AutoAugment (Cubuk et al. 2019), RandAugment (Cubuk et al. 2020) and TrivialAugment (Muller & Hutter 2021).

Each image draws its own sub-policy or op (and, for TrivialAugment, its own magnitude); an op
is applied to the images that chose it in one batched call. Magnitudes are fractions of each
op's largest setting, which follow the papers (shear 0.3, translate 150/331 of the side,
rotate 30 degrees, enhancement factors 1 +- 0.9, posterize down to 4 bits, solarize down to a
threshold of 0; TrivialAugment's wide ranges: shear 0.99, translate 32 px, rotate 135 degrees,
factors 1 +- 0.99, posterize down to 2 bits). Signed ops take a random sign per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import torch

from cnnlab.data.augment import base
from cnnlab.data.augment import colour as P
from cnnlab.data.augment.base import Op, Params, check, constant, select, signs
from cnnlab.data.augment.warps import affine


def _shear(axis: int) -> Callable[..., torch.Tensor]:
    def op(x: torch.Tensor, m: torch.Tensor, fill: torch.Tensor, wide: bool) -> torch.Tensor:
        degrees = torch.rad2deg(torch.atan(m * (0.99 if wide else 0.3)))
        shear = torch.zeros(len(x), 2, device=x.device)
        shear[:, axis] = degrees
        return affine(x, fill, shear=shear)
    return op


def _translate(axis: int) -> Callable[..., torch.Tensor]:
    def op(x: torch.Tensor, m: torch.Tensor, fill: torch.Tensor, wide: bool) -> torch.Tensor:
        side = x.shape[3 - axis]
        shift = torch.zeros(len(x), 2, device=x.device)
        shift[:, axis] = m * (32.0 if wide else 150 / 331 * side)
        return affine(x, fill, shift=shift)
    return op


def _enhance(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., torch.Tensor]:
    def op(x: torch.Tensor, m: torch.Tensor, fill: torch.Tensor, wide: bool) -> torch.Tensor:
        return fn(x, 1 + m * (0.99 if wide else 0.9))
    return op


# name -> (op of (images, signed magnitude fraction, fill, wide), whether the sign is random)
PRIMITIVES: dict[str, tuple[Callable[..., torch.Tensor], bool]] = {
    "identity": (lambda x, m, fill, wide: x, False),
    "shear_x": (_shear(0), True),
    "shear_y": (_shear(1), True),
    "translate_x": (_translate(0), True),
    "translate_y": (_translate(1), True),
    "rotate": (lambda x, m, fill, wide: affine(x, fill, angle=m * (135.0 if wide else 30.0)), True),
    "brightness": (_enhance(P.brightness), True),
    "color": (_enhance(P.saturation), True),
    "contrast": (_enhance(P.contrast), True),
    "sharpness": (_enhance(P.sharpness), True),
    "posterize": (lambda x, m, fill, wide: P.posterize(x, 8 - (m * (6 if wide else 4)).round()), False),
    "solarize": (lambda x, m, fill, wide: P.solarize(x, 1 - m), False),
    "autocontrast": (lambda x, m, fill, wide: P.autocontrast(x), False),
    "equalize": (lambda x, m, fill, wide: P.equalize(x), False),
    "invert": (lambda x, m, fill, wide: 1 - x, False),
}
NAMES = list(PRIMITIVES)
RANDAUGMENT_OPS = NAMES[:14]  # every primitive but invert, as RandAugment's list

_ = None  # a sub-policy step without a magnitude
# The AutoAugment sub-policies (op, probability, magnitude level 0..9), from Cubuk et al. 2019's appendix.
IMAGENET_POLICY = (
    (("posterize", 0.4, 8), ("rotate", 0.6, 9)), (("solarize", 0.6, 5), ("autocontrast", 0.6, _)),
    (("equalize", 0.8, _), ("equalize", 0.6, _)), (("posterize", 0.6, 7), ("posterize", 0.6, 6)),
    (("equalize", 0.4, _), ("solarize", 0.2, 4)), (("equalize", 0.4, _), ("rotate", 0.8, 8)),
    (("solarize", 0.6, 3), ("equalize", 0.6, _)), (("posterize", 0.8, 5), ("equalize", 1.0, _)),
    (("rotate", 0.2, 3), ("solarize", 0.6, 8)), (("equalize", 0.6, _), ("posterize", 0.4, 6)),
    (("rotate", 0.8, 8), ("color", 0.4, 0)), (("rotate", 0.4, 9), ("equalize", 0.6, _)),
    (("equalize", 0.0, _), ("equalize", 0.8, _)), (("invert", 0.6, _), ("equalize", 1.0, _)),
    (("color", 0.6, 4), ("contrast", 1.0, 8)), (("rotate", 0.8, 8), ("color", 1.0, 2)),
    (("color", 0.8, 8), ("solarize", 0.8, 7)), (("sharpness", 0.4, 7), ("invert", 0.6, _)),
    (("shear_x", 0.6, 5), ("equalize", 1.0, _)), (("color", 0.4, 0), ("equalize", 0.6, _)),
    (("equalize", 0.4, _), ("solarize", 0.2, 4)), (("solarize", 0.6, 5), ("autocontrast", 0.6, _)),
    (("invert", 0.6, _), ("equalize", 1.0, _)), (("color", 0.6, 4), ("contrast", 1.0, 8)),
    (("equalize", 0.8, _), ("equalize", 0.6, _)),
)
CIFAR10_POLICY = (
    (("invert", 0.1, _), ("contrast", 0.2, 6)), (("rotate", 0.7, 2), ("translate_x", 0.3, 9)),
    (("sharpness", 0.8, 1), ("sharpness", 0.9, 3)), (("shear_y", 0.5, 8), ("translate_y", 0.7, 9)),
    (("autocontrast", 0.5, _), ("equalize", 0.9, _)), (("shear_y", 0.2, 7), ("posterize", 0.3, 7)),
    (("color", 0.4, 3), ("brightness", 0.6, 7)), (("sharpness", 0.3, 9), ("brightness", 0.7, 9)),
    (("equalize", 0.6, _), ("equalize", 0.5, _)), (("contrast", 0.6, 7), ("sharpness", 0.6, 5)),
    (("color", 0.7, 7), ("translate_x", 0.5, 8)), (("equalize", 0.3, _), ("autocontrast", 0.4, _)),
    (("translate_y", 0.4, 3), ("sharpness", 0.2, 6)), (("brightness", 0.9, 6), ("color", 0.2, 8)),
    (("solarize", 0.5, 2), ("invert", 0.0, _)), (("equalize", 0.2, _), ("autocontrast", 0.6, _)),
    (("equalize", 0.2, _), ("equalize", 0.6, _)), (("color", 0.9, 9), ("equalize", 0.6, _)),
    (("autocontrast", 0.8, _), ("solarize", 0.2, 8)), (("brightness", 0.1, 3), ("color", 0.7, 0)),
    (("solarize", 0.4, 5), ("autocontrast", 0.9, _)), (("translate_y", 0.9, 9), ("translate_y", 0.7, 9)),
    (("autocontrast", 0.9, _), ("solarize", 0.8, 3)), (("equalize", 0.8, _), ("invert", 0.1, _)),
    (("translate_y", 0.7, 9), ("autocontrast", 0.9, _)),
)


def apply_choices(x: torch.Tensor, op: torch.Tensor, magnitude: torch.Tensor, sign: torch.Tensor,
                  fill: torch.Tensor, wide: bool = False) -> torch.Tensor:
    """Return x with primitive NAMES[op[i]] applied to image i at magnitude fraction magnitude[i] (-1 skips it)."""
    if base.host_side(x.device):
        return _apply_choices_cpu(x, op, magnitude, sign, fill, wide)
    for k, name in enumerate(NAMES):
        if name == "identity":
            continue
        fn, signed = PRIMITIVES[name]
        m = magnitude * sign if signed else magnitude

        def run(index: torch.Tensor | None, fn: Callable[..., torch.Tensor] = fn, m: torch.Tensor = m,
                x: torch.Tensor = x) -> torch.Tensor:
            part = x if index is None else x[index]
            return fn(part, m if index is None else m[index], fill, wide)

        x = select(op == k, x, run)
    return x


def _apply_choices_cpu(x: torch.Tensor, op: torch.Tensor, magnitude: torch.Tensor, sign: torch.Tensor,
                       fill: torch.Tensor, wide: bool) -> torch.Tensor:
    """Return apply_choices on the CPU: each primitive computes only its own images, into one copy of the batch."""
    out = None
    for k, name in enumerate(NAMES):
        index = (op == k).nonzero().squeeze(1)
        if name == "identity" or len(index) == 0:
            continue
        fn, signed = PRIMITIVES[name]
        m = (magnitude * sign if signed else magnitude)[index]
        out = x.clone() if out is None else out
        out[index] = fn(x[index], m, fill, wide).to(x.dtype)
    return x if out is None else out


class AutoAugmentPolicy(StrEnum):
    """The learned AutoAugment policies."""

    CIFAR10 = "cifar10"
    IMAGENET = "imagenet"


@dataclass(frozen=True)
class AutoAugment(Op):
    """Each image takes one of the policy's 25 sub-policies: two ops, each with its own probability and magnitude."""

    tag: ClassVar[str] = "autoaugment"
    carries: ClassVar[bool] = False  # its ops, drawn per image, include shears and shifts that would move targets
    policy: AutoAugmentPolicy = AutoAugmentPolicy.CIFAR10

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.policy in set(AutoAugmentPolicy), f"autoaugment policy={self.policy!r} is not cifar10 or imagenet")
        object.__setattr__(self, "policy", AutoAugmentPolicy(self.policy))  # a plain string from Python code

    def nonnegative(self) -> tuple[str, ...]:
        """Return no numeric fields: the policy is a name."""
        return ()

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's two (op, magnitude fraction) steps, op -1 where a step's coin says no."""
        table = IMAGENET_POLICY if self.policy is AutoAugmentPolicy.IMAGENET else CIFAR10_POLICY
        ops = constant([[NAMES.index(name) for name, _, _ in sub] for sub in table], device, torch.long)
        chance = constant([[p for _, p, _ in sub] for sub in table], device)
        level = constant([[(lv or 0) / 9 for _, _, lv in sub] for sub in table], device)
        choice = torch.randint(0, len(table), (count,), generator=generator, device=device)
        coin = torch.rand(count, 2, generator=generator, device=device) < chance[choice]
        return {"op": torch.where(coin, ops[choice], -1), "magnitude": level[choice],
                "sign": torch.stack([signs(count, generator, device), signs(count, generator, device)], 1)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, op: torch.Tensor, magnitude: torch.Tensor,
              sign: torch.Tensor) -> torch.Tensor:
        """Return the images after their two steps."""
        for step in range(2):
            x = apply_choices(x, op[:, step], magnitude[:, step], sign[:, step], fill)
        return x


@dataclass(frozen=True)
class RandAugment(Op):
    """n layers, each applying one op drawn uniformly per image from RandAugment's 14, all at magnitude m of 30."""

    tag: ClassVar[str] = "randaugment"
    carries: ClassVar[bool] = False  # its ops, drawn per image, include shears and shifts that would move targets
    n: int = 2  # the paper's CIFAR-10 setting for Wide-ResNet-28-2: N=3, M=4; ImageNet ResNet-50: N=2, M=9
    magnitude: float = 9.0  # on the paper's 0..30 scale

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.magnitude <= 30, f"randaugment magnitude={self.magnitude} must lie in [0, 30]")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's op index per layer (B, n) and signs."""
        picks = [NAMES.index(name) for name in RANDAUGMENT_OPS]
        chosen = torch.randint(0, len(picks), (count, self.n), generator=generator, device=device)
        sign = torch.randint(0, 2, (count, self.n), generator=generator, device=device).float() * 2 - 1
        return {"op": constant(picks, device, torch.long)[chosen], "sign": sign}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, op: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        """Return the images after their n ops."""
        magnitude = torch.full((x.shape[0],), self.magnitude / 30, device=x.device)
        for layer in range(op.shape[1]):
            x = apply_choices(x, op[:, layer], magnitude, sign[:, layer], fill)
        return x


@dataclass(frozen=True)
class TrivialAugment(Op):
    """One op per image, drawn uniformly from RandAugment's 14, at a magnitude drawn uniformly per image (wide ranges)."""

    tag: ClassVar[str] = "trivialaugment"
    carries: ClassVar[bool] = False  # its ops, drawn per image, include shears and shifts that would move targets
    bins: int = 31  # magnitude levels 0..bins-1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.bins >= 2, f"trivialaugment bins={self.bins} must be >= 2")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's op, magnitude fraction and sign."""
        picks = constant([NAMES.index(name) for name in RANDAUGMENT_OPS], device, torch.long)
        op = picks[torch.randint(0, len(picks), (count,), generator=generator, device=device)]
        level = torch.randint(0, self.bins, (count,), generator=generator, device=device).float() / (self.bins - 1)
        return {"op": op, "magnitude": level, "sign": signs(count, generator, device)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, op: torch.Tensor, magnitude: torch.Tensor,
              sign: torch.Tensor) -> torch.Tensor:
        """Return the images after their one op."""
        return apply_choices(x, op, magnitude, sign, fill, wide=True)



