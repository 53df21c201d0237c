"""Fixed kernels the course uses to show what a filter does: Sobel, Prewitt, Laplacian, Gaussian,
box and Gabor banks, as ready `nn.Conv2d` layers (frozen weights, 'same' padding, no bias).

Each bank applies every kernel to every input channel on its own (a depth-wise conv with
`len(kernels)` outputs per channel), so a colour image keeps its channels apart.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.errors import CnnlabError


def sobel() -> torch.Tensor:
    """Return the horizontal and vertical Sobel kernels (2, 3, 3): x-derivative, y-derivative."""
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    return torch.stack([gx, gx.t()])


def prewitt() -> torch.Tensor:
    """Return the horizontal and vertical Prewitt kernels (2, 3, 3)."""
    gx = torch.tensor([[-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]])
    return torch.stack([gx, gx.t()])


def laplacian(diagonal: bool = False) -> torch.Tensor:
    """Return the 4-neighbour (or 8-neighbour) Laplacian kernel (1, 3, 3)."""
    if diagonal:
        kernel = torch.ones(3, 3)
        kernel[1, 1] = -8.0
    else:
        kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    return kernel[None]


def gaussian(sigma: float = 1.0, size: int | None = None) -> torch.Tensor:
    """Return a normalised Gaussian kernel (1, k, k), k = 2 ceil(3 sigma) + 1 unless given (odd)."""
    if sigma <= 0:
        raise CnnlabError(f"a Gaussian kernel needs sigma > 0, got {sigma}")
    size = size or 2 * math.ceil(3 * sigma) + 1
    if size % 2 == 0:
        raise CnnlabError(f"kernel size must be odd, got {size}")
    offsets = torch.arange(size, dtype=torch.float32) - size // 2
    line = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = line[:, None] * line[None, :]
    return (kernel / kernel.sum())[None]


def box(size: int = 3) -> torch.Tensor:
    """Return the mean filter (1, k, k)."""
    if size < 1 or size % 2 == 0:
        raise CnnlabError(f"box size must be odd and >= 1, got {size}")
    return torch.full((1, size, size), 1.0 / (size * size))


def gabor(orientations: int = 4, sigma: float = 2.0, wavelength: float = 4.0, gamma: float = 0.5,
          phase: float = 0.0, size: int | None = None) -> torch.Tensor:
    """Return a bank of Gabor kernels (orientations, k, k): a cosine grating under a Gaussian, at evenly spaced angles."""
    if orientations < 1:
        raise CnnlabError(f"a Gabor bank needs orientations >= 1, got {orientations}")
    size = size or 2 * math.ceil(3 * sigma) + 1
    half = size // 2
    ys, xs = torch.meshgrid(torch.arange(-half, half + 1, dtype=torch.float32),
                            torch.arange(-half, half + 1, dtype=torch.float32), indexing="ij")
    kernels = []
    for k in range(orientations):
        theta = math.pi * k / orientations
        x_rot = xs * math.cos(theta) + ys * math.sin(theta)
        y_rot = -xs * math.sin(theta) + ys * math.cos(theta)
        envelope = torch.exp(-(x_rot ** 2 + (gamma * y_rot) ** 2) / (2 * sigma ** 2))
        kernel = envelope * torch.cos(2 * math.pi * x_rot / wavelength + phase)
        kernels.append(kernel - kernel.mean())  # zero mean: a flat region gives no response
    return torch.stack(kernels)


BANKS = {"sobel": sobel, "prewitt": prewitt, "laplacian": laplacian, "gaussian": gaussian, "box": box, "gabor": gabor}


def kernel_conv(kernels: torch.Tensor, channels: int = 1) -> nn.Conv2d:
    """Return a frozen, bias-free, 'same'-padded conv applying each kernel (K, k, k) to each of `channels` inputs.

    Output channel c * K + j is kernel j on input channel c.
    """
    count, size = kernels.shape[0], kernels.shape[-1]
    conv = nn.Conv2d(channels, channels * count, size, padding=size // 2, groups=channels, bias=False)
    with torch.no_grad():
        conv.weight.copy_(kernels[None].expand(channels, -1, -1, -1).reshape(channels * count, 1, size, size))
    conv.weight.requires_grad_(False)
    return conv


def bank(name: str, channels: int = 1, **options: float) -> nn.Conv2d:
    """Return the named kernel bank (sobel, prewitt, laplacian, gaussian, box, gabor) as a fixed conv."""
    if name not in BANKS:
        raise CnnlabError(f"unknown kernel bank {name!r}: choose {', '.join(BANKS)}")
    return kernel_conv(BANKS[name](**options), channels)
