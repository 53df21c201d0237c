"""Photometric ops: brightness, contrast, saturation, hue, colour jitter, gamma, invert, solarise,
posterise, greyscale, equalise, autocontrast, sharpness, and AlexNet's PCA lighting.

Each follows torchvision's functional op on float images (the reference in tests), with its
factor drawn per image. A factor of 1 (0 for hue) is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F

from cnnlab.data.augment.base import DataFacts, Op, Params, check, constant, uniform
from cnnlab.errors import CnnlabError


def _per_image(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.to(x.dtype).view(-1, 1, 1, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Return the luma (B, 1, H, W) of RGB images (ITU-R 601-2, as PIL and torchvision), or grey images as they are."""
    if x.shape[1] == 1:
        return x
    return x[:, 0:1] * 0.2989 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114


def blend(image: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Return ratio * image + (1 - ratio) * other per image, clipped to [0, 1]."""
    r = _per_image(ratio, image)
    return (image * r + other * (1 - r)).clamp(0, 1)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Return the images times their factor, clipped."""
    return (x * _per_image(factor, x)).clamp(0, 1)


def contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Return the images blended with their mean grey level."""
    return blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Return the images blended with their own greyscale (grey images unchanged)."""
    return x if x.shape[1] == 1 else blend(x, grayscale(x), factor)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """Return hue, saturation, value (B, 3, H, W), each in [0, 1], of RGB images."""
    r, g, b = x.unbind(1)
    value, _ = x.max(1)
    spread = value - x.min(1).values
    grey = spread == 0
    safe = torch.where(grey, torch.ones_like(spread), spread)
    saturation = spread / torch.where(value == 0, torch.ones_like(value), value)
    hue = torch.where(value == r, (g - b) / safe,
                      torch.where(value == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    hue = torch.where(grey, torch.zeros_like(hue), hue / 6).remainder(1.0)
    return torch.stack([hue, saturation, value], 1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Return RGB images from hue, saturation, value (B, 3, H, W)."""
    hue, sat, value = hsv[:, 0:1], hsv[:, 1:2], hsv[:, 2:3]
    # Branch-free: channel n (5 for r, 3 for g, 1 for b) is v - v s clamp(min(k, 4 - k), 0, 1), k = (n + 6 h) mod 6.
    k = (constant([5.0, 3.0, 1.0], hsv.device, hsv.dtype).view(1, 3, 1, 1) + hue * 6).remainder(6)
    return (value - value * sat * torch.minimum(k, 4 - k).clamp(0, 1)).clamp(0, 1)


def hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Return RGB images with their hue turned by `shift` (a fraction of the colour wheel, -0.5..0.5)."""
    hsv = rgb_to_hsv(x.float())
    turned = torch.cat([(hsv[:, :1] + shift.float().view(-1, 1, 1, 1)).remainder(1.0), hsv[:, 1:]], 1)
    return hsv_to_rgb(turned).to(x.dtype)


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Return images quantised to 2**bits levels per channel; 8 bits or more leaves an image as it is."""
    levels = _per_image(2.0 ** bits.float(), x)
    quantised = (x * levels).floor().clamp(max=levels - 1) / levels
    return torch.where(_per_image(bits, x) >= 8, x, quantised)


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Return the images with every value at or above the threshold inverted; a threshold above 1 changes nothing."""
    return torch.where(x >= _per_image(threshold, x), 1 - x, x)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Return each channel histogram-equalised over 256 levels (PIL's rule, as torchvision applies it to floats)."""
    batch, channels, height, width = x.shape
    levels = (x.float() * (256 - 1e-3)).long().clamp(0, 255).view(batch * channels, -1)  # torchvision's float -> uint8
    offsets = torch.arange(batch * channels, device=x.device).view(-1, 1) * 256
    # scatter_add, not bincount: bincount asks the device for the largest index (a host sync).
    flat = (levels + offsets).view(-1)
    hist = torch.zeros(batch * channels * 256, device=x.device, dtype=torch.long).scatter_add_(0, flat, torch.ones_like(flat))
    hist = hist.view(-1, 256)
    cumulative = hist.cumsum(1)
    last = hist.gather(1, cumulative.argmax(1, keepdim=True))  # count of the highest level present
    step = torch.div(height * width - last, 255, rounding_mode="floor")  # (BC, 1)
    lut = torch.div(cumulative[:, :-1] + step // 2, step.clamp_min(1), rounding_mode="floor").clamp(0, 255)
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut], 1)
    mapped = lut.gather(1, levels)
    out = torch.where(step > 0, mapped, levels).float() / 255
    return out.view_as(x).to(x.dtype)


def autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Return each channel stretched so its darkest value is 0 and its brightest 1 (flat channels unchanged)."""
    low = x.amin(dim=(2, 3), keepdim=True)
    high = x.amax(dim=(2, 3), keepdim=True)
    flat = high == low
    scale = torch.where(flat, torch.ones_like(high), high - low)
    return ((x - torch.where(flat, torch.zeros_like(low), low)) / scale).clamp(0, 1)


def sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Return the images blended with a smoothed copy (PIL's 1-5-1 kernel, borders kept): > 1 sharpens."""
    channels = x.shape[1]
    if min(x.shape[-2:]) <= 2:
        return x
    kernel = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    kernel[1, 1] = 5
    kernel = (kernel / 13).expand(channels, 1, 3, 3)
    smooth = x.clone()
    smooth[..., 1:-1, 1:-1] = F.conv2d(x, kernel, groups=channels)
    return blend(x, smooth, factor)


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
        return x.clamp_min(0) ** _per_image(gamma, x)


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
    """Quantise each image to 2**bits levels, bits drawn from min_bits..8 (8 keeps the image)."""

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
