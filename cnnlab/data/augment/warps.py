"""Warps: scale, rotation, shear, perspective and elastic deformation, and the grid sampling they share.

They follow torchvision's tensor conventions (bilinear `grid_sample` with align_corners=False
about the image centre, pixels from outside filled with `fill` by torchvision's rule), so each
image matches torchvision's functional op given the same parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from cnnlab.data.augment.base import Op, Params, check, constant, uniform
from cnnlab.data.augment.targets import corners, enclose, extent, mask_at, pixel_grid


def sample_grid(x: torch.Tensor, grid: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Return x sampled bilinearly at `grid` (B, H, W, 2; -1..1), outside pixels blended towards fill."""
    # In float32 whatever the images' dtype: a half-precision grid misplaces pixels by whole columns.
    grid = grid.float()
    image = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mask = inside_weight(grid, *x.shape[-2:]).unsqueeze(1)  # (B, 1, H, W)
    return torch.lerp(fill.float(), image, mask).to(x.dtype)  # fill + mask (image - fill): torchvision's fill rule


def inside_weight(grid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Return (B, H, W): the bilinear weight that falls on pixels inside the image at each grid point.

    It is what sampling an all-ones channel would give (torchvision's fill mask), computed from
    the coordinates instead, so the images are sampled once with no extra channel.
    """
    def along(coordinate: torch.Tensor, size: int) -> torch.Tensor:
        pixel = ((coordinate + 1) * size - 1) / 2  # align_corners=False
        # 1 inside [0, size - 1], falling linearly to 0 one pixel beyond either edge.
        return torch.minimum(pixel + 1, size - pixel).clamp(0, 1)

    return along(grid[..., 0], width) * along(grid[..., 1], height)


def inverse_affine(angle: torch.Tensor, translate: torch.Tensor, scale: torch.Tensor,
                   shear: torch.Tensor) -> torch.Tensor:
    """Return (B, 2, 3) matrices taking output to input pixels: rotation, scale, shear (degrees) about the centre.

    The forward map is T * RotateScaleShear, with RotateScaleShear = R(a) S(s) SHy(sy) SHx(sx),
    whose determinant is s^2; its inverse is written out so it runs batched on the device.
    """
    rot, sx, sy = torch.deg2rad(angle), torch.deg2rad(shear[:, 0]), torch.deg2rad(shear[:, 1])
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -torch.cos(rot - sy) * torch.tan(sx) / torch.cos(sy) - torch.sin(rot)
    c = torch.sin(rot - sy) / torch.cos(sy)
    d = -torch.sin(rot - sy) * torch.tan(sx) / torch.cos(sy) + torch.cos(rot)
    linear = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / scale.view(-1, 1, 1)  # (B, 2, 2)
    offset = -(linear * translate.unsqueeze(1)).sum(-1, keepdim=True)  # undo the translation first: (B, 2, 1)
    return torch.cat([linear, offset], -1)


def warp_affine(x: torch.Tensor, inverse: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Return each image warped by its (2, 3) output-to-input matrix in centred pixel units."""
    return sample_grid(x, affine_grid(inverse, *x.shape[-2:]), fill)


def affine_forward(inverse: torch.Tensor, points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Return points (B, ..., 2) in pixel units moved forward by the op whose output-to-input matrices are `inverse` (B, 2, 3)."""
    centre = points.new_tensor([width / 2, height / 2])
    linear, offset = inverse[:, :, :2].to(points.dtype), inverse[:, :, 2].to(points.dtype)
    a, b, c, d = linear[:, 0, 0], linear[:, 0, 1], linear[:, 1, 0], linear[:, 1, 1]
    det = a * d - b * c
    undo = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2) / det.view(-1, 1, 1)  # A^-1
    shape = (len(points),) + (1,) * (points.ndim - 2) + (2,)
    source = points - centre - offset.view(shape)  # src_c - t
    moved = torch.einsum("bij,b...j->b...i", undo, source)
    return moved + centre


def affine_grid(inverse: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Return the sampling grid (B, H, W, 2; -1..1) of (2, 3) output-to-input matrices in centred pixel units."""
    batch, device = len(inverse), inverse.device
    # In grid units (-1..1 across the image, align_corners=False) a centred pixel p is p / (size / 2),
    # so the matrix becomes S^-1 M S with S = diag(W / 2, H / 2).
    half = constant([width / 2, height / 2], device)
    linear = inverse[:, :, :2] * half.view(1, 1, 2) / half.view(1, 2, 1)
    offset = inverse[:, :, 2:] / half.view(1, 2, 1)
    theta = torch.cat([linear, offset], -1).float().view(batch, 6, 1, 1)
    xs = ((torch.arange(width, device=device, dtype=torch.float32) * 2 + 1) / width - 1).view(1, 1, width)
    ys = ((torch.arange(height, device=device, dtype=torch.float32) * 2 + 1) / height - 1).view(1, height, 1)
    # A row part (B, 1, W) plus a column part (B, H, 1), added once into the grid: on the CPU this is
    # several times cheaper than affine_grid's batched matrix product.
    grid = torch.empty(batch, height, width, 2, device=device)
    torch.add(theta[:, 0] * xs + theta[:, 2], theta[:, 1] * ys, out=grid[..., 0])
    torch.add(theta[:, 3] * xs + theta[:, 5], theta[:, 4] * ys, out=grid[..., 1])
    return grid


def affine(x: torch.Tensor, fill: torch.Tensor, *, angle: torch.Tensor | None = None, shift: torch.Tensor | None = None,
           scale: torch.Tensor | None = None, shear: torch.Tensor | None = None) -> torch.Tensor:
    """Return x rotated, shifted (pixels), scaled and sheared per image; parameters left out are the identity."""
    return warp_affine(x, _matrices(x.shape[0], x.device, angle, shift, scale, shear), fill)


@dataclass(frozen=True)
class _Affine(Op):
    """An affine warp about the centre: its images, masks and boxes all follow `inverse` (output to input)."""

    moves: ClassVar[bool] = True

    def inverse(self, count: int, device: torch.device, **params: torch.Tensor) -> torch.Tensor:
        """Return the (B, 2, 3) output-to-input matrices in centred pixel units."""
        raise NotImplementedError

    def apply(self, x: torch.Tensor, fill: torch.Tensor, **params: torch.Tensor) -> torch.Tensor:
        """Return the images warped."""
        return warp_affine(x, self.inverse(len(x), x.device, **params), fill)

    def move_mask(self, mask: torch.Tensor, shape: tuple[int, int, int], **params: torch.Tensor) -> torch.Tensor:
        """Return the masks warped by nearest neighbour, IGNORE brought in."""
        return mask_at(mask, affine_grid(self.inverse(len(mask), mask.device, **params), *shape[1:]))

    def move_boxes(self, boxes: torch.Tensor, shape: tuple[int, int, int], **params: torch.Tensor) -> torch.Tensor:
        """Return the enclosing boxes of the moved corners."""
        inverse = self.inverse(len(boxes), boxes.device, **params)
        return enclose(affine_forward(inverse, corners(boxes), *shape[1:]))


def _matrices(count: int, device: torch.device, angle: torch.Tensor | None = None, shift: torch.Tensor | None = None,
              scale: torch.Tensor | None = None, shear: torch.Tensor | None = None) -> torch.Tensor:
    """Return inverse_affine's matrices with the parameters left out as the identity."""
    angle = torch.zeros(count, device=device) if angle is None else angle
    shift = torch.zeros(count, 2, device=device) if shift is None else shift
    scale = torch.ones(count, device=device) if scale is None else scale
    shear = torch.zeros(count, 2, device=device) if shear is None else shear
    return inverse_affine(angle, shift, scale, shear)


@dataclass(frozen=True)
class Scale(_Affine):
    """Zoom each image about its centre by a factor in [min_scale, max_scale] (deck 004's 0.8-1.2 ablation)."""

    tag: ClassVar[str] = "scale"
    neutral: ClassVar[dict[str, float]] = {"min_scale": 1.0, "max_scale": 1.0}
    min_scale: float = 0.8
    max_scale: float = 1.2

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0 < self.min_scale <= self.max_scale, "scale needs 0 < min_scale <= max_scale")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's zoom factor."""
        return {"scale": uniform(self.min_scale, self.max_scale, count, generator, device)}

    def inverse(self, count: int, device: torch.device, *, scale: torch.Tensor) -> torch.Tensor:
        """Return the zoom by `scale` (> 1 enlarges) as output-to-input matrices."""
        return _matrices(count, device, scale=scale)


@dataclass(frozen=True)
class Rotate(_Affine):
    """Rotate each image about its centre by an angle in [-degrees, degrees] (anticlockwise positive)."""

    tag: ClassVar[str] = "rotate"
    neutral: ClassVar[dict[str, float]] = {"degrees": 0.0}
    degrees: float = 15.0

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's angle in degrees."""
        return {"angle": uniform(-self.degrees, self.degrees, count, generator, device)}

    def inverse(self, count: int, device: torch.device, *, angle: torch.Tensor) -> torch.Tensor:
        """Return the anticlockwise rotation by `angle` degrees (the affine matrix turns clockwise)."""
        return _matrices(count, device, angle=-angle)


@dataclass(frozen=True)
class Shear(_Affine):
    """Shear each image about its centre by angles in [-degrees, degrees] along x and [-y_degrees, y_degrees] along y."""

    tag: ClassVar[str] = "shear"
    neutral: ClassVar[dict[str, float]] = {"degrees": 0.0, "y_degrees": 0.0}
    degrees: float = 10.0
    y_degrees: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.degrees < 90 and self.y_degrees < 90, "shear degrees must be below 90")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's (x, y) shear angles in degrees."""
        return {"shear": torch.stack([uniform(-self.degrees, self.degrees, count, generator, device),
                                      uniform(-self.y_degrees, self.y_degrees, count, generator, device)], 1)}

    def inverse(self, count: int, device: torch.device, *, shear: torch.Tensor) -> torch.Tensor:
        """Return the shear by (x, y) angles in degrees."""
        return _matrices(count, device, shear=shear)


def perspective_coefficients(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """Return (B, 8) coefficients mapping output points `end` to input points `start` (B, 4, 2), by least squares."""
    start, end = start.double(), end.double()
    x, y = end[..., 0], end[..., 1]
    u, v = start[..., 0], start[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], -1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], -1)
    system = torch.stack([rows_u, rows_v], 2).view(-1, 8, 8)  # rows in corner order, u then v
    target = torch.stack([u, v], 2).view(-1, 8, 1)
    # solve_ex without its error check: the check would make the host wait for the device.
    return torch.linalg.solve_ex(system, target, check_errors=False).result.squeeze(-1).float()


@dataclass(frozen=True)
class Perspective(Op):
    """Move each corner inwards by up to `distortion` of half the image, and warp the image to match."""

    tag: ClassVar[str] = "perspective"
    moves: ClassVar[bool] = True
    neutral: ClassVar[dict[str, float]] = {"distortion": 0.0}
    distortion: float = 0.3  # torchvision's RandomPerspective uses 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.distortion <= 1, f"perspective distortion={self.distortion} must lie in [0, 1]")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's warp as perspective coefficients (output pixel -> input pixel)."""
        _, height, width = shape
        corners = constant([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], device)
        inward = constant([[1, 1], [-1, 1], [-1, -1], [1, -1]], device)
        reach = constant([self.distortion * width / 2, self.distortion * height / 2], device)
        moved = corners + inward * reach * torch.rand(count, 4, 2, generator=generator, device=device)
        return {"coefficients": perspective_coefficients(corners.expand(count, -1, -1), moved.floor())}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, coefficients: torch.Tensor) -> torch.Tensor:
        """Return the images warped by (B, 8) perspective coefficients, as torchvision's perspective."""
        return sample_grid(x, self.grid(coefficients, *x.shape[-2:]), fill)

    def move_mask(self, mask: torch.Tensor, shape: tuple[int, int, int], *, coefficients: torch.Tensor) -> torch.Tensor:
        """Return the masks warped by nearest neighbour, IGNORE brought in (and behind the horizon)."""
        return mask_at(mask, self.grid(coefficients, *shape[1:]))

    def move_boxes(self, boxes: torch.Tensor, shape: tuple[int, int, int], *, coefficients: torch.Tensor) -> torch.Tensor:
        """Return the enclosing boxes of the corners moved by the homography's inverse (lines stay lines)."""
        c = torch.nan_to_num(coefficients.double(), nan=0.0, posinf=0.0, neginf=0.0)
        homography = torch.cat([c, torch.ones_like(c[:, :1])], 1).view(-1, 3, 3)  # output -> input, continuous pixels
        forward = torch.linalg.inv_ex(homography).inverse  # no error check: it would make the host wait
        points = corners(boxes).double()
        uniform_points = torch.cat([points, torch.ones_like(points[..., :1])], -1)
        moved = torch.einsum("bij,bmkj->bmki", forward, uniform_points)
        return enclose(moved[..., :2] / moved[..., 2:].clamp_min(1e-9)).to(boxes.dtype)

    def grid(self, coefficients: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Return the sampling grid (B, H, W, 2; -1..1) of (B, 8) perspective coefficients, 2 (outside) behind the horizon."""
        ys = torch.arange(height, device=coefficients.device, dtype=torch.float32) + 0.5
        xs = torch.arange(width, device=coefficients.device, dtype=torch.float32) + 0.5
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        c = coefficients.view(-1, 8, 1, 1)
        c = torch.nan_to_num(c, nan=0.0, posinf=0.0, neginf=0.0)  # a folded quadrilateral's singular system
        denominator = c[:, 6] * gx + c[:, 7] * gy + 1
        u = (c[:, 0] * gx + c[:, 1] * gy + c[:, 2]) / (0.5 * width) / denominator - 1
        v = (c[:, 3] * gx + c[:, 4] * gy + c[:, 5]) / (0.5 * height) / denominator - 1
        grid = torch.stack([u, v], -1)
        # Behind the horizon of a strong warp (denominator <= 0) there is no source pixel: fill.
        valid = (denominator > 1e-6).unsqueeze(-1) & torch.isfinite(grid)
        return torch.where(valid, grid, 2.0)


@dataclass(frozen=True)
class Elastic(Op):
    """Elastic deformation (Simard et al. 2003): a random displacement field smoothed by a Gaussian of `sigma`."""

    tag: ClassVar[str] = "elastic"
    moves: ClassVar[bool] = True
    neutral: ClassVar[dict[str, float]] = {"alpha": 0.0}
    alpha: float = 34.0  # displacement scale in pixels: Simard et al.'s MNIST setting
    sigma: float = 4.0  # smoothness of the field in pixels (theirs: 4)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.sigma > 0, f"elastic sigma={self.sigma} must be > 0")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator, device: torch.device) -> Params:
        """Return each image's displacement field (B, H, W, 2) in grid units (-1..1 spans the image)."""
        from cnnlab.data.augment.filters import gaussian_blur

        _, height, width = shape
        noise = torch.rand(count, 2, height, width, generator=generator, device=device) * 2 - 1
        size = 2 * int(4 * self.sigma) + 1  # the kernel reaches 4 sigma each side
        sigma = torch.full((count,), self.sigma, device=device)
        field = gaussian_blur(noise, sigma, min(size, 2 * min(height, width) - 1)) * self.alpha  # pixels
        scale = constant([2 / width, 2 / height], device).view(1, 2, 1, 1)
        return {"displacement": (field * scale).permute(0, 2, 3, 1)}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, *, displacement: torch.Tensor) -> torch.Tensor:
        """Return the images resampled at the identity grid plus `displacement`, as torchvision's elastic."""
        gx, gy = pixel_grid(*x.shape[-2:], x.device)
        return sample_grid(x, torch.stack([gx, gy], -1) + displacement, fill)

    def move_mask(self, mask: torch.Tensor, shape: tuple[int, int, int], *, displacement: torch.Tensor) -> torch.Tensor:
        """Return the masks resampled by nearest neighbour on the same grid, IGNORE brought in."""
        gx, gy = pixel_grid(*shape[1:], mask.device)
        return mask_at(mask, torch.stack([gx, gy], -1) + displacement)

    def move_boxes(self, boxes: torch.Tensor, shape: tuple[int, int, int], *, displacement: torch.Tensor) -> torch.Tensor:
        """Return each box as the extent of the output pixels whose source point falls inside it.

        A strong field folds (Simard et al.'s alpha 34 at sigma 4 already does): one source point
        then lands in several places, and moving points along the box's edges forward finds only
        one of them, so the box missed parts of its moved mask. Reading the grid backwards finds
        them all: an output pixel belongs to a box exactly when the mask moved by nearest neighbour
        would give it the box's pixel, so the box is that mask's extent.
        """
        _, height, width = shape
        gx, gy = pixel_grid(height, width, boxes.device)
        source = torch.stack([gx, gy], -1) + displacement  # (B, H, W, 2) grid units
        sx = ((source[..., 0] + 1) * width / 2).unsqueeze(1)  # (B, 1, H, W) pixels
        sy = ((source[..., 1] + 1) * height / 2).unsqueeze(1)
        x1, y1, x2, y2 = (v.view(len(boxes), -1, 1, 1) for v in boxes.unbind(-1))
        inside = (sx >= x1) & (sx < x2) & (sy >= y1) & (sy < y2)  # (B, M, H, W)
        return extent(inside)
