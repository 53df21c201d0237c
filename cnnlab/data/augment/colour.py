"""Colour kernels on batches with one factor per image, each as torchvision's functional op on float images.

The photometric ops and the policies both call these.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnlab.data.augment.base import constant


def per_image(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Return one value per image (B,) shaped (B, 1, 1, 1) in the images' dtype, to scale a batch by."""
    return values.to(x.dtype).view(-1, 1, 1, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Return the luma (B, 1, H, W) of RGB images (ITU-R 601-2, as PIL and torchvision), or grey images as they are."""
    if x.shape[1] == 1:
        return x
    return x[:, 0:1] * 0.2989 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114


def blend(image: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Return ratio * image + (1 - ratio) * other per image, clipped to [0, 1]."""
    r = per_image(ratio, image)
    return (image * r + other * (1 - r)).clamp(0, 1)


def brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Return the images times their factor, clipped."""
    return (x * per_image(factor, x)).clamp(0, 1)


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
    levels = per_image(2.0 ** bits.float(), x)
    quantised = (x * levels).floor().clamp(max=levels - 1) / levels
    return torch.where(per_image(bits, x) >= 8, x, quantised)


def solarize(x: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Return the images with every value at or above the threshold inverted; a threshold above 1 changes nothing."""
    return torch.where(x >= per_image(threshold, x), 1 - x, x)


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
    kernel[1, 1].fill_(5)  # an item assignment copies a host scalar, which makes the host wait on a GPU
    kernel = (kernel / 13).expand(channels, 1, 3, 3)
    smooth = x.clone()
    smooth[..., 1:-1, 1:-1] = F.conv2d(x, kernel, groups=channels)
    return blend(x, smooth, factor)
