"""Filters and noise: Gaussian blur, sharpen, emboss, Gaussian and salt-and-pepper noise, superpixels.

Per-image kernels run as one grouped convolution over the whole batch. The Gaussian kernel is
built here rather than by kornia's gaussian_blur2d, whose check of a per-image sigma tensor
(`bool((sigma > 0).all())`) makes the host wait for the device on every call. Superpixel
replacement segments each image with SLIC (scikit-image) on the CPU: it is the one op here that
leaves the training device, and it is the slowest in benchmarks/augment_throughput.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from cnnlab.data.augment.base import DataFacts, Op, Params, check, constant, uniform
from cnnlab.errors import CnnlabError


def gaussian_kernels(sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Return (B, k) normalised 1-D Gaussian kernels of the given sigmas (B,), torchvision's taps."""
    taps = torch.arange(kernel_size, device=sigma.device, dtype=torch.float32) - (kernel_size - 1) / 2
    sigma = sigma.float().clamp_min(1e-3).view(-1, 1)  # sigma -> 0 is the identity: one tap
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    return kernel / kernel.sum(1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Return each image blurred by a Gaussian of its own sigma (B,), reflecting at the borders.

    A kernel as wide as the image cannot reflect; its borders repeat the edge pixels instead.
    """
    batch, channels, height, width = x.shape
    kernel = gaussian_kernels(sigma, kernel_size).repeat_interleave(channels, 0)  # (B*C, k)
    half = kernel_size // 2
    mode = "reflect" if half < min(height, width) else "replicate"
    flat = F.pad(x.float().reshape(1, batch * channels, height, width), (half, half, half, half), mode=mode)
    rows = F.conv2d(flat, kernel.view(-1, 1, 1, kernel_size), groups=batch * channels)  # along x
    both = F.conv2d(rows, kernel.view(-1, 1, kernel_size, 1), groups=batch * channels)  # then y
    return both.view(batch, channels, height, width).to(x.dtype)


def filter3x3(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Return each image (B, C, H, W) convolved with its own 3x3 kernel (B, 3, 3), reflecting at the borders."""
    batch, channels, height, width = x.shape
    weight = kernels.to(x.dtype).repeat_interleave(channels, 0).unsqueeze(1)  # (B*C, 1, 3, 3)
    padded = F.pad(x.reshape(1, batch * channels, height, width), (1, 1, 1, 1), mode="reflect")
    return F.conv2d(padded, weight, groups=batch * channels).view(batch, channels, height, width)


def _identity3x3(count: int, device: torch.device) -> torch.Tensor:
    kernel = torch.zeros(count, 3, 3, device=device)
    kernel[:, 1, 1].fill_(1)
    return kernel


@dataclass(frozen=True)
class GaussianBlur(Op):
    """Blur each image with a Gaussian whose sigma is drawn from [min_sigma, max_sigma] pixels."""

    tag: ClassVar[str] = "gaussian_blur"
    neutral: ClassVar[dict[str, float]] = {"min_sigma": 0.0, "max_sigma": 0.0}
    min_sigma: float = 0.1
    max_sigma: float = 1.5
    kernel_size: int = 5  # odd; torchvision's GaussianBlur has no default

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.min_sigma <= self.max_sigma, "gaussian_blur needs min_sigma <= max_sigma")
        check(self.kernel_size % 2 == 1, f"gaussian_blur kernel_size={self.kernel_size} must be odd")

    def check_data(self, facts: DataFacts) -> None:
        """Refuse a kernel too large to reflect at the borders."""
        super().check_data(facts)
        check(self.kernel_size // 2 < min(facts.height, facts.width),
              f"gaussian_blur kernel_size={self.kernel_size} is too large for {facts.height}x{facts.width} images")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's sigma in pixels."""
        return {"sigma": uniform(self.min_sigma, self.max_sigma, count, generator, device)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, sigma: torch.Tensor) -> torch.Tensor:
        """Return the images blurred by their sigma."""
        return gaussian_blur(x, sigma, self.kernel_size)


@dataclass(frozen=True)
class _Blend3x3(Op):
    """A 3x3 effect kernel blended with the identity by alpha drawn from [0, alpha] per image, clipped to [0, 1]."""

    neutral: ClassVar[dict[str, float]] = {"alpha": 0.0}
    alpha: float = 0.5

    def effect(self, count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Return each image's effect kernel (B, 3, 3)."""
        raise NotImplementedError

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's 3x3 kernel."""
        alpha = uniform(0.0, self.alpha, count, generator, device).view(-1, 1, 1)
        effect = self.effect(count, generator, device)
        return {"kernel": (1 - alpha) * _identity3x3(count, device) + alpha * effect}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, kernel: torch.Tensor) -> torch.Tensor:
        """Return the images filtered by their kernels, clipped to [0, 1]."""
        return filter3x3(x, kernel).clamp(0, 1)


@dataclass(frozen=True)
class Sharpen(_Blend3x3):
    """Blend each image towards a Laplacian-sharpened copy (imgaug's Sharpen)."""

    tag: ClassVar[str] = "sharpen"
    min_lightness: float = 0.8  # the centre weight is 8 + lightness: below 1 darkens, above brightens
    max_lightness: float = 1.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.alpha <= 1 and self.min_lightness <= self.max_lightness, "sharpen needs alpha <= 1 and min_lightness <= max_lightness")

    def effect(self, count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Return [[-1, -1, -1], [-1, 8 + lightness, -1], [-1, -1, -1]] per image."""
        lightness = uniform(self.min_lightness, self.max_lightness, count, generator, device)
        effect = -torch.ones(count, 3, 3, device=device)
        effect[:, 1, 1] = 8 + lightness
        return effect


@dataclass(frozen=True)
class Emboss(_Blend3x3):
    """Blend each image towards an embossed copy, a directional relief kernel (imgaug's Emboss)."""

    tag: ClassVar[str] = "emboss"
    min_strength: float = 0.5
    max_strength: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.alpha <= 1 and self.min_strength <= self.max_strength, "emboss needs alpha <= 1 and min_strength <= max_strength")

    def effect(self, count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Return imgaug's [[-1-s, -s, 0], [-s, 1, s], [0, s, 1+s]] per image."""
        s = uniform(self.min_strength, self.max_strength, count, generator, device).view(-1, 1, 1)
        relief = constant([[-1.0, -1.0, 0.0], [-1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], device)
        centre = constant([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], device)
        return centre + s * relief


@dataclass(frozen=True)
class GaussianNoise(Op):
    """Add Gaussian noise to every pixel, its std drawn per image from [0, sigma]; clipped to [0, 1]."""

    tag: ClassVar[str] = "gaussian_noise"
    neutral: ClassVar[dict[str, float]] = {"sigma": 0.0}
    sigma: float = 0.05

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's noise (B, C, H, W), already scaled by its std."""
        std = uniform(0.0, self.sigma, count, generator, device).view(-1, 1, 1, 1)
        return {"noise": torch.randn(count, *shape, generator=generator, device=device) * std}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, noise: torch.Tensor) -> torch.Tensor:
        """Return the images plus their noise, clipped to [0, 1]."""
        return (x + noise.to(x.dtype)).clamp(0, 1)


@dataclass(frozen=True)
class SaltPepper(Op):
    """Set a fraction in [0, amount] of each image's pixels to black or white, half each (all channels together)."""

    tag: ClassVar[str] = "salt_pepper"
    neutral: ClassVar[dict[str, float]] = {"amount": 0.0}
    amount: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.amount <= 1, f"salt_pepper amount={self.amount} must lie in [0, 1]")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each pixel's fate: -1 kept, 0 pepper, 1 salt (B, 1, H, W)."""
        _, height, width = shape
        amount = uniform(0.0, self.amount, count, generator, device).view(-1, 1, 1, 1)
        hit = torch.rand(count, 1, height, width, generator=generator, device=device) < amount
        salt = torch.rand(count, 1, height, width, generator=generator, device=device) < 0.5
        return {"fate": torch.where(hit, salt.float(), -1.0)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, fate: torch.Tensor) -> torch.Tensor:
        """Return the images with their hit pixels set to 0 or 1."""
        return torch.where(fate >= 0, fate.to(x.dtype), x)


@dataclass(frozen=True)
class Superpixels(Op):
    """Fill a fraction `replace` of each image's SLIC superpixels with their mean colour (imgaug's Superpixels).

    SLIC runs in scikit-image on the CPU, image by image: the batch is copied to the host and back.
    """

    tag: ClassVar[str] = "superpixels"
    neutral: ClassVar[dict[str, float]] = {"replace": 0.0}
    replace: float = 0.5  # probability that a segment is filled with its mean
    segments: int = 64  # SLIC's target count of segments per image
    compactness: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.replace <= 1 and self.segments >= 1, "superpixels needs replace <= 1 and segments >= 1")

    def check_data(self, facts: DataFacts) -> None:
        """Refuse the op when scikit-image is missing, before training starts."""
        super().check_data(facts)
        try:
            import skimage.segmentation  # noqa: F401
        except ImportError:
            raise CnnlabError("recipe: augment superpixels needs scikit-image: pip install 'cnnlab[explain]'") from None

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return per image a coin for each of up to 4 x segments labels."""
        return {"coins": torch.rand(count, 4 * self.segments, generator=generator, device=device) < self.replace}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, coins: torch.Tensor) -> torch.Tensor:
        """Return the images with their chosen segments set to the segment's mean colour."""
        from skimage.segmentation import slic

        host = x.detach().float().cpu()
        out = host.clone()
        for i, image in enumerate(host):
            pixels = image.permute(1, 2, 0).numpy()
            labels = torch.from_numpy(slic(pixels, n_segments=self.segments, compactness=self.compactness,
                                           channel_axis=-1 if image.shape[0] > 1 else None, start_label=0,
                                           enforce_connectivity=False)).long().clamp_max(coins.shape[1] - 1).view(-1)
            flat = image.reshape(image.shape[0], -1)
            sums = torch.zeros(image.shape[0], coins.shape[1]).index_add_(1, labels, flat)
            counts = torch.bincount(labels, minlength=coins.shape[1]).clamp_min(1)
            means = sums / counts
            chosen = coins[i].cpu()[labels]
            out[i] = torch.where(chosen, means[:, labels], flat).view_as(image)
        return out.to(x.device, x.dtype)
