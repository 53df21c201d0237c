"""Geometric ops that move whole pixels or resample a box: flips, translation, resized and centre crops.

Pixels brought in take the data's mean colour, which normalisation makes 0: the value the first
release's zero padding gave. The warps (rotation, shear, ...) are in `warps`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from cnnlab.data.augment.base import DataFacts, Op, Params, check, uniform
from cnnlab.data.augment.targets import IGNORE
from cnnlab.data.tta import centre_crop
from cnnlab.errors import CnnlabError


@dataclass(frozen=True)
class Flip(Op):
    """Mirror each image left-right with probability p (not for digits or text)."""

    tag: ClassVar[str] = "flip"
    moves: ClassVar[bool] = True
    p: float = 0.5  # the usual coin: half the batch is mirrored

    def apply(self, x: torch.Tensor, fill: torch.Tensor, **params: torch.Tensor) -> torch.Tensor:
        """Return the images mirrored left-right."""
        return x.flip(3)

    def move_mask(self, mask: torch.Tensor, shape: tuple[int, int, int], **params: torch.Tensor) -> torch.Tensor:
        """Return the masks mirrored left-right."""
        return mask.flip(-1)

    def move_boxes(self, boxes: torch.Tensor, shape: tuple[int, int, int], **params: torch.Tensor) -> torch.Tensor:
        """Return the boxes mirrored: x1' = W - x2, x2' = W - x1."""
        width = shape[2]
        return torch.stack([width - boxes[..., 2], boxes[..., 1], width - boxes[..., 0], boxes[..., 3]], -1)


@dataclass(frozen=True)
class VerticalFlip(Op):
    """Mirror each image top-bottom with probability p (aerial and microscope images, not scenes)."""

    tag: ClassVar[str] = "vflip"
    moves: ClassVar[bool] = True
    p: float = 0.5

    def apply(self, x: torch.Tensor, fill: torch.Tensor, **params: torch.Tensor) -> torch.Tensor:
        """Return the images mirrored top-bottom."""
        return x.flip(2)

    def move_mask(self, mask: torch.Tensor, shape: tuple[int, int, int], **params: torch.Tensor) -> torch.Tensor:
        """Return the masks mirrored top-bottom."""
        return mask.flip(-2)

    def move_boxes(self, boxes: torch.Tensor, shape: tuple[int, int, int], **params: torch.Tensor) -> torch.Tensor:
        """Return the boxes mirrored: y1' = H - y2, y2' = H - y1."""
        height = shape[1]
        return torch.stack([boxes[..., 0], height - boxes[..., 3], boxes[..., 2], height - boxes[..., 1]], -1)


@dataclass(frozen=True)
class Translate(Op):
    """Shift each image by up to `padding` whole pixels each way (a crop after padding), the mean colour coming in."""

    tag: ClassVar[str] = "translate"
    moves: ClassVar[bool] = True
    neutral: ClassVar[dict[str, int]] = {"padding": 0}
    padding: int = 4  # He et al. 2016's CIFAR crop: 4 pixels

    def check_data(self, facts: DataFacts) -> None:
        """Refuse a shift as large as the image."""
        super().check_data(facts)
        check(self.padding < min(facts.height, facts.width),
              f"translate padding={self.padding} must be smaller than the {facts.height}x{facts.width} images")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return the crop's offsets dy, dx in 0..2 padding."""
        high = 2 * self.padding + 1
        return {"dy": torch.randint(0, high, (count,), generator=generator, device=device),
                "dx": torch.randint(0, high, (count,), generator=generator, device=device)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
        """Return the crop at (dy, dx) of each padded image, the input's size."""
        batch, channels, height, width = x.shape
        device, pad = x.device, self.padding
        inside = F.pad(torch.ones_like(x[:1, :1], dtype=torch.bool), (pad, pad, pad, pad))
        padded = torch.where(inside, F.pad(x, (pad, pad, pad, pad)), fill.to(x.dtype))  # exact in any dtype
        wide = width + 2 * pad
        rows = dy.view(-1, 1, 1) + torch.arange(height, device=device).view(1, -1, 1)
        cols = dx.view(-1, 1, 1) + torch.arange(width, device=device).view(1, 1, -1)
        flat = (rows * wide + cols).view(batch, 1, height * width).expand(-1, channels, -1)  # (B, C, H*W)
        return padded.view(batch, channels, -1).gather(2, flat).view(batch, channels, height, width)

    def move_mask(self, mask: torch.Tensor, shape: tuple[int, int, int], *, dy: torch.Tensor,
                  dx: torch.Tensor) -> torch.Tensor:
        """Return the masks shifted as the images, IGNORE where the shift brings pixels in."""
        return _as_mask(self.apply, mask, dy=dy, dx=dx)

    def move_boxes(self, boxes: torch.Tensor, shape: tuple[int, int, int], *, dy: torch.Tensor,
                   dx: torch.Tensor) -> torch.Tensor:
        """Return the boxes shifted by (padding - dx, padding - dy): the crop at (dy, dx) of the padded image."""
        shift = torch.stack([self.padding - dx, self.padding - dy], -1).to(boxes.dtype).repeat(1, 2)  # (B, 4)
        return boxes + shift.unsqueeze(1)


@dataclass(frozen=True)
class ResizedCrop(Op):
    """Crop a random area and aspect ratio, resized back to the image's size (Szegedy et al. 2015's Inception crop).

    The ratio is relative to the image's own aspect (the same as torchvision's on square images),
    and a box too large for the image is shrunk to fit with its shape kept, instead of
    torchvision's ten tries and fallback to a centre crop.
    """

    tag: ClassVar[str] = "resized_crop"
    moves: ClassVar[bool] = True
    neutral: ClassVar[dict[str, float]] = {"min_scale": 1.0, "max_scale": 1.0, "min_ratio": 1.0, "max_ratio": 1.0}
    min_scale: float = 0.35  # of the image's area; ImageNet uses 0.08, small images lose too much below ~0.3
    max_scale: float = 1.0
    min_ratio: float = 3 / 4  # width / height
    max_ratio: float = 4 / 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.min_scale <= self.max_scale <= 1, "resized_crop needs 0 < min_scale <= max_scale <= 1")
        check(0 < self.min_ratio <= self.max_ratio, "resized_crop needs 0 < min_ratio <= max_ratio")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each crop's top, left, height and width in pixels."""
        _, height, width = shape
        area = uniform(self.min_scale, self.max_scale, count, generator, device) * height * width
        ratio = torch.exp(uniform(math.log(self.min_ratio), math.log(self.max_ratio), count, generator, device))
        ratio = ratio * (width / height)
        w, h = torch.sqrt(area * ratio), torch.sqrt(area / ratio)
        shrink = torch.minimum(width / w, height / h).clamp(max=1.0)
        w, h = (w * shrink).round().clamp(1, width), (h * shrink).round().clamp(1, height)
        top = (torch.rand(count, generator=generator, device=device) * (height - h + 1)).floor().clamp_max(height - h)
        left = (torch.rand(count, generator=generator, device=device) * (width - w + 1)).floor().clamp_max(width - w)
        return {"top": top, "left": left, "h": h, "w": w}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, top: torch.Tensor, left: torch.Tensor,
              h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Return each box resized bilinearly to the image's size (F.interpolate's sampling, no antialias)."""
        _, _, height, width = x.shape
        device = x.device

        def coordinate(start: torch.Tensor, length: torch.Tensor, size: int) -> torch.Tensor:
            steps = torch.arange(size, device=device, dtype=torch.float32) + 0.5
            source = start.view(-1, 1) + steps * (length / size).view(-1, 1) - 0.5  # (B, size)
            source = torch.maximum(torch.minimum(source, (start + length - 1).view(-1, 1)), start.view(-1, 1))
            return source * 2 / (size - 1) - 1 if size > 1 else torch.zeros_like(source)  # align_corners=True units

        gy, gx = coordinate(top.float(), h.float(), height), coordinate(left.float(), w.float(), width)
        grid = torch.stack([gx.view(-1, 1, width).expand(-1, height, -1),
                            gy.view(-1, height, 1).expand(-1, -1, width)], -1)
        return F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=True).to(x.dtype)

    def move_mask(self, mask: torch.Tensor, shape: tuple[int, int, int], *, top: torch.Tensor, left: torch.Tensor,
                  h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Return each mask's box resized by nearest neighbour: output pixel j reads source pixel floor(left + (j + 0.5) w / W)."""
        _, height, width = shape
        device = mask.device

        def index(start: torch.Tensor, length: torch.Tensor, size: int) -> torch.Tensor:
            centres = torch.arange(size, device=device, dtype=torch.float32) + 0.5
            source = (start.view(-1, 1) + centres * (length / size).view(-1, 1)).floor()
            return torch.minimum(source, (start + length - 1).view(-1, 1)).long()  # (B, size)

        rows, cols = index(top.float(), h.float(), height), index(left.float(), w.float(), width)
        flat = rows.unsqueeze(2) * width + cols.unsqueeze(1)  # (B, H, W)
        return mask.reshape(len(mask), -1).gather(1, flat.view(len(mask), -1)).view_as(mask)

    def move_boxes(self, boxes: torch.Tensor, shape: tuple[int, int, int], *, top: torch.Tensor, left: torch.Tensor,
                   h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Return the boxes in the resized crop: (x - left) W / w, (y - top) H / h."""
        _, height, width = shape
        origin = torch.stack([left, top, left, top], -1).to(boxes.dtype).unsqueeze(1)
        factor = torch.stack([width / w, height / h, width / w, height / h], -1).to(boxes.dtype).unsqueeze(1)
        return (boxes - origin) * factor


@dataclass(frozen=True)
class _SquareCrop(Op):
    """A crop to size x size for every image: the batch shrinks, so there is no coin (p must be 1)."""

    moves: ClassVar[bool] = True
    size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.size >= 1, f"{self.tag} size={self.size} must be >= 1")
        check(self.p == 1.0, f"{self.tag} p must be 1: it changes the image size, so every image needs it")

    def check_data(self, facts: DataFacts) -> None:
        """Refuse a crop larger than the images."""
        super().check_data(facts)
        if self.size > min(facts.height, facts.width):
            raise CnnlabError(f"recipe: augment {self.tag} size={self.size} is larger than the "
                              f"{facts.height}x{facts.width} images: use size <= {min(facts.height, facts.width)}")


@dataclass(frozen=True)
class CenterCrop(_SquareCrop):
    """Cut the central size x size square; every image, so the batch shrinks (deck 004's "centre crop 32")."""

    tag: ClassVar[str] = "center_crop"
    size: int = 32

    def apply(self, x: torch.Tensor, fill: torch.Tensor, **params: torch.Tensor) -> torch.Tensor:
        """Return the central square of each image (torchvision's rounding of the offsets)."""
        return centre_crop(x, self.size)  # the test views' crop, so training and testing cut alike

    def move_mask(self, mask: torch.Tensor, shape: tuple[int, int, int], **params: torch.Tensor) -> torch.Tensor:
        """Return the central square of each mask."""
        return centre_crop(mask, self.size)

    def move_boxes(self, boxes: torch.Tensor, shape: tuple[int, int, int], **params: torch.Tensor) -> torch.Tensor:
        """Return the boxes less the crop's offsets (centre_crop's rounding)."""
        _, height, width = shape
        top, left = int(round((height - self.size) / 2.0)), int(round((width - self.size) / 2.0))
        return boxes - boxes.new_tensor([left, top, left, top])

    def __call__(self, x: torch.Tensor, generator: torch.Generator, fill: torch.Tensor | None = None) -> torch.Tensor:
        """Return the central crop of every image (no coin: p is 1)."""
        return self.apply(x, x.new_zeros(()))


@dataclass(frozen=True)
class RandomCrop(_SquareCrop):
    """Cut a random size x size square from each image (AlexNet's 224 of 256; 28 of CIFAR's 32): the batch shrinks.

    Test views then crop to the same size (evaluation.crop): the centre, or AlexNet's ten crops.
    """

    tag: ClassVar[str] = "random_crop"
    size: int = 28

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each crop's top and left offsets, uniform over every position that fits."""
        _, height, width = shape
        return {"top": torch.randint(0, height - self.size + 1, (count,), generator=generator, device=device),
                "left": torch.randint(0, width - self.size + 1, (count,), generator=generator, device=device)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
        """Return the size x size square at (top, left) of each image."""
        batch, channels, _, width = x.shape
        size, device = self.size, x.device
        rows = top.view(-1, 1, 1) + torch.arange(size, device=device).view(1, -1, 1)
        cols = left.view(-1, 1, 1) + torch.arange(size, device=device).view(1, 1, -1)
        flat = (rows * width + cols).view(batch, 1, size * size).expand(-1, channels, -1)  # (B, C, size*size)
        return x.reshape(batch, channels, -1).gather(2, flat).view(batch, channels, size, size)

    def move_mask(self, mask: torch.Tensor, shape: tuple[int, int, int], *, top: torch.Tensor,
                  left: torch.Tensor) -> torch.Tensor:
        """Return the square at (top, left) of each mask."""
        return _as_mask(self.apply, mask, top=top, left=left)

    def move_boxes(self, boxes: torch.Tensor, shape: tuple[int, int, int], *, top: torch.Tensor,
                   left: torch.Tensor) -> torch.Tensor:
        """Return the boxes less each crop's offsets."""
        return boxes - torch.stack([left, top, left, top], -1).to(boxes.dtype).unsqueeze(1)

    def __call__(self, x: torch.Tensor, generator: torch.Generator, fill: torch.Tensor | None = None) -> torch.Tensor:
        """Return a random crop of every image (no coin: p is 1, and the output has another size)."""
        if x.shape[0] == 0:
            return x[..., : self.size, : self.size]
        return self.apply(x, x.new_zeros(()), **self.sample(x.shape[0], tuple(x.shape[1:]), generator, x.device))


def _as_mask(apply: Any, mask: torch.Tensor, **params: torch.Tensor) -> torch.Tensor:
    """Return masks (B, H, W) moved by an op's own index-moving `apply`, exact in float, IGNORE brought in."""
    fill = torch.full((1, 1, 1, 1), float(IGNORE), device=mask.device)
    return apply(mask.unsqueeze(1).float(), fill, **params).squeeze(1).round().to(mask.dtype)
