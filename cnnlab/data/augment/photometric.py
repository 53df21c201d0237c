"""Photometric ops: brightness, contrast, saturation, hue, colour jitter, gamma, invert, solarise,
posterise, greyscale, equalise, autocontrast, sharpness, and AlexNet's PCA lighting.

Each follows torchvision's functional op on float images (the reference in tests), with its
factor drawn per image. A factor of 1 (0 for hue) is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from cnnlab.data.augment.base import DataFacts, Op, Params, check, constant, uniform
from cnnlab.data.augment.colour import (
    autocontrast,
    brightness,
    contrast,
    equalize,
    grayscale,
    hue,
    per_image,
    posterize,
    saturation,
    sharpness,
    solarize,
)
from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class _Factor(Op):
    """An enhancement whose factor is drawn from [1 - magnitude, 1 + magnitude] per image."""

    neutral: ClassVar[dict[str, float]] = {"magnitude": 0.0}
    adjust: ClassVar[staticmethod]  # the batched function of (images, factor per image)
    magnitude: float = 0.4

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's factor (never below 0)."""
        return {"factor": uniform(1 - self.magnitude, 1 + self.magnitude, count, generator, device).clamp_min(0)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, factor: torch.Tensor) -> torch.Tensor:
        """Return the images adjusted by their factor."""
        return type(self).adjust(x, factor)


@dataclass(frozen=True)
class Brightness(_Factor):
    """Scale each image's values by a factor in [1 - magnitude, 1 + magnitude]."""

    tag: ClassVar[str] = "brightness"
    adjust = staticmethod(brightness)


@dataclass(frozen=True)
class Contrast(_Factor):
    """Blend each image with its mean grey by a factor in [1 - magnitude, 1 + magnitude]."""

    tag: ClassVar[str] = "contrast"
    adjust = staticmethod(contrast)


@dataclass(frozen=True)
class Saturation(_Factor):
    """Blend each image with its greyscale by a factor in [1 - magnitude, 1 + magnitude]."""

    tag: ClassVar[str] = "saturation"
    needs_rgb: ClassVar[bool] = True
    adjust = staticmethod(saturation)


@dataclass(frozen=True)
class Sharpness(_Factor):
    """Blend each image with a smoothed copy by a factor in [1 - magnitude, 1 + magnitude] (> 1 sharpens)."""

    tag: ClassVar[str] = "sharpness"
    adjust = staticmethod(sharpness)


@dataclass(frozen=True)
class Hue(Op):
    """Turn each image's hue by a shift in [-magnitude, magnitude] of the colour wheel."""

    tag: ClassVar[str] = "hue"
    needs_rgb: ClassVar[bool] = True
    neutral: ClassVar[dict[str, float]] = {"magnitude": 0.0}
    magnitude: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.magnitude <= 0.5, f"hue magnitude={self.magnitude} must lie in [0, 0.5]")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's hue shift."""
        return {"shift": uniform(-self.magnitude, self.magnitude, count, generator, device)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, shift: torch.Tensor) -> torch.Tensor:
        """Return the images with their hue turned."""
        return hue(x, shift)


@dataclass(frozen=True)
class ColorJitter(Op):
    """Brightness, contrast, saturation and hue in that fixed order, each drawn per image (torchvision's ColorJitter
    draws the order at random per call)."""

    tag: ClassVar[str] = "color_jitter"
    neutral: ClassVar[dict[str, float]] = {"brightness": 0.0, "contrast": 0.0, "saturation": 0.0, "hue": 0.0}
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.hue <= 0.5, f"color_jitter hue={self.hue} must lie in [0, 0.5]")

    def check_data(self, facts: DataFacts) -> None:
        """Refuse saturation and hue for grey images."""
        if facts.channels != 3 and (self.saturation or self.hue):
            raise CnnlabError(f"recipe: augment color_jitter saturation and hue need RGB images but these have "
                              f"{facts.channels} channel(s): set saturation=0 and hue=0")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's four factors."""
        def factor(m: float) -> torch.Tensor:
            return uniform(1 - m, 1 + m, count, generator, device).clamp_min(0)
        return {"brightness": factor(self.brightness), "contrast": factor(self.contrast),
                "saturation": factor(self.saturation), "hue": uniform(-self.hue, self.hue, count, generator, device)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, **factors: torch.Tensor) -> torch.Tensor:
        """Return the images after the four adjustments."""
        x = contrast(brightness(x, factors["brightness"]), factors["contrast"])
        if x.shape[1] == 3 and (self.saturation or self.hue):
            x = hue(saturation(x, factors["saturation"]), factors["hue"])
        return x


@dataclass(frozen=True)
class Gamma(Op):
    """Raise each image to a power gamma drawn log-uniformly from [exp(-magnitude), exp(magnitude)]."""

    tag: ClassVar[str] = "gamma"
    neutral: ClassVar[dict[str, float]] = {"magnitude": 0.0}
    magnitude: float = 0.3

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's gamma."""
        return {"gamma": torch.exp(uniform(-self.magnitude, self.magnitude, count, generator, device))}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, gamma: torch.Tensor) -> torch.Tensor:
        """Return x ** gamma per image."""
        return x.clamp_min(0) ** per_image(gamma, x)


@dataclass(frozen=True)
class Invert(Op):
    """Replace each chosen image by its negative, 1 - x."""

    tag: ClassVar[str] = "invert"
    p: float = 0.5

    def apply(self, x: torch.Tensor, fill: torch.Tensor, **params: torch.Tensor) -> torch.Tensor:
        """Return the negatives."""
        return 1 - x


@dataclass(frozen=True)
class Solarize(Op):
    """Invert every value above a threshold drawn from [1 - magnitude, 1] per image (magnitude 0 changes nothing)."""

    tag: ClassVar[str] = "solarize"
    neutral: ClassVar[dict[str, float]] = {"magnitude": 0.0}
    magnitude: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.magnitude <= 1, f"solarize magnitude={self.magnitude} must lie in [0, 1]")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's threshold (above 1 for magnitude 0)."""
        threshold = uniform(1 - self.magnitude, 1.0, count, generator, device)
        return {"threshold": threshold if self.magnitude > 0 else threshold + 1}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, threshold: torch.Tensor) -> torch.Tensor:
        """Return the images solarised at their thresholds."""
        return solarize(x, threshold)


@dataclass(frozen=True)
class Posterize(Op):
    """Quantise each image to 2**bits levels, bits drawn from min_bits..8 (8 keeps the image).

    8 bits is the identity, as torchvision's uint8 path; torchvision's float path instead rounds
    down to a multiple of 1/256. Every bit depth gives the uint8 path's 8-bit codes
    (tests/data/test_posterize_reference.py).
    """

    tag: ClassVar[str] = "posterize"
    neutral: ClassVar[dict[str, int]] = {"min_bits": 8}
    min_bits: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        check(1 <= self.min_bits <= 8, f"posterize min_bits={self.min_bits} must lie in 1..8")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's bit depth."""
        return {"bits": torch.randint(self.min_bits, 9, (count,), generator=generator, device=device)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, bits: torch.Tensor) -> torch.Tensor:
        """Return the posterised images."""
        return posterize(x, bits)


@dataclass(frozen=True)
class Grayscale(Op):
    """Replace each chosen RGB image by its luma in all three channels."""

    tag: ClassVar[str] = "grayscale"
    p: float = 0.2

    def apply(self, x: torch.Tensor, fill: torch.Tensor, **params: torch.Tensor) -> torch.Tensor:
        """Return the images in grey."""
        return grayscale(x).expand_as(x)


@dataclass(frozen=True)
class Equalize(Op):
    """Histogram-equalise each channel of each chosen image."""

    tag: ClassVar[str] = "equalize"
    p: float = 0.5

    def apply(self, x: torch.Tensor, fill: torch.Tensor, **params: torch.Tensor) -> torch.Tensor:
        """Return the equalised images."""
        return equalize(x)


@dataclass(frozen=True)
class AutoContrast(Op):
    """Stretch each channel of each chosen image to span [0, 1]."""

    tag: ClassVar[str] = "autocontrast"
    p: float = 0.5

    def apply(self, x: torch.Tensor, fill: torch.Tensor, **params: torch.Tensor) -> torch.Tensor:
        """Return the stretched images."""
        return autocontrast(x)


@dataclass(frozen=True)
class PCALighting(Op):
    """AlexNet's lighting noise (Krizhevsky et al. 2012, 4.1): add sum_i alpha_i lambda_i v_i to every pixel,
    alpha_i ~ N(0, alphastd), over the eigenvectors v_i of the training set's RGB covariance."""

    tag: ClassVar[str] = "pca_lighting"
    needs_rgb: ClassVar[bool] = True
    neutral: ClassVar[dict[str, float]] = {"alphastd": 0.0}
    alphastd: float = 0.1  # the paper's standard deviation
    eigenvalues: tuple[float, ...] = ()  # filled in from the training images at start-up
    eigenvectors: tuple[tuple[float, ...], ...] = ()

    def fitted(self, facts: DataFacts) -> PCALighting:
        """Return this op with the training set's eigen-decomposition filled in."""
        return replace(self, eigenvalues=facts.eigenvalues, eigenvectors=facts.eigenvectors)

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's RGB offset (B, 3)."""
        if not self.eigenvalues:
            raise CnnlabError("augment pca_lighting has no eigenvectors: build the augmentation from the training data")
        values = constant(self.eigenvalues, device)
        vectors = constant(self.eigenvectors, device)  # columns are eigenvectors
        alpha = torch.randn(count, 3, generator=generator, device=device) * self.alphastd
        return {"offset": (alpha * values) @ vectors.T}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, offset: torch.Tensor) -> torch.Tensor:
        """Return the images with their colour offset added, clipped to [0, 1]."""
        return (x + offset.to(x.dtype).view(-1, 3, 1, 1)).clamp(0, 1)
