"""Mixing: MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019), which blend images and their targets.

They return soft targets (B, K), which the classification task's loss reads as probabilities.
With box targets (detection) both keep the objects instead: MixUp keeps both images' boxes, each
weighted by its image's share (a seventh column the detectors' losses read), and CutMix keeps an
image's own boxes that stay at least a quarter visible and the pasted partner's boxes clipped to
the patch when a quarter of each is inside it. CutMix pastes masks too; a blended mask has no
meaning, so MixUp refuses masks. lambda ~ Beta(alpha, alpha) is drawn with the op's generator on
the device (Marsaglia and Tsang's gamma sampler), so the stream is seeded and resumable like every
other op's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from cnnlab.data.augment import base
from cnnlab.data.augment.base import check
from cnnlab.data.augment.occlusion import box_mask
from cnnlab.data.augment.targets import MIN_SIDE, TargetKind, kind_of
from cnnlab.data.boxes import box_area, rebox
from cnnlab.models.detector import AREA, WEIGHT

VISIBLE = 0.25  # CutMix keeps a box when at least this share of it shows in the mixed image

TRIES = 16  # gamma candidates per draw: each is accepted with probability > 0.95, so all 16 fail ~1e-21 of the time


def log_gamma(shape: float, count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Return the logs of `count` draws of Gamma(shape, 1) (Marsaglia & Tsang 2000; below shape 1 by the U^(1/shape) boost).

    Logs, because below shape ~0.1 many draws are smaller than float32 can hold.
    """
    boost = shape < 1
    a = shape + 1 if boost else shape
    d = a - 1 / 3
    c = 1 / (9 * d) ** 0.5
    z = torch.randn(count, TRIES, generator=generator, device=device)
    u = torch.rand(count, TRIES, generator=generator, device=device)
    v = (1 + c * z) ** 3
    ok = (v > 0) & (torch.log(u.clamp_min(1e-30)) < 0.5 * z**2 + d - d * v + d * torch.log(v.clamp_min(1e-30)))
    first = ok.int().argmax(1, keepdim=True)  # the first accepted candidate of each row
    draw = torch.log((d * v).gather(1, first).squeeze(1))
    if boost:
        draw = draw + torch.log(torch.rand(count, generator=generator, device=device).clamp_min(1e-30)) / shape
    return draw


def beta(alpha: float, count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Return `count` draws of Beta(alpha, alpha)."""
    log_a, log_b = log_gamma(alpha, count, generator, device), log_gamma(alpha, count, generator, device)
    return torch.sigmoid(log_a - log_b)  # a / (a + b), computed from the logs


@dataclass(frozen=True, kw_only=True)  # p by keyword: positional arguments are the op's own
class _Mixing:
    """A mix of each image with a partner from the same batch, with probability p (per batch, or per image)."""

    tag: ClassVar[str] = ""
    tag_key: ClassVar[str] = "op"
    needs_rgb: ClassVar[bool] = False
    carries: ClassVar[bool | frozenset[str]] = True  # the target kinds it mixes (True: all)
    neutral: ClassVar[dict[str, float]] = {"p": 0.0}
    p: float = 1.0
    alpha: float = 1.0  # of Beta(alpha, alpha)
    per_sample: bool = False  # a lambda (and box) per image instead of one per batch

    def __post_init__(self) -> None:
        check(0.0 <= self.p <= 1.0, f"{self.tag} p={self.p} must lie in [0, 1]")
        check(self.alpha > 0, f"{self.tag} alpha={self.alpha} must be > 0")

    def check_data(self, facts: object) -> None:
        """Mixing applies to any images."""

    def _draw(self, count: int, generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (lambda per image, partner index per image); an image left unmixed has lambda 1."""
        draws = count if self.per_sample else 1
        lam = beta(self.alpha, draws, generator, device)
        coin = torch.rand(draws, generator=generator, device=device) < self.p
        lam = torch.where(coin, lam, torch.ones_like(lam)).expand(count)
        # Each image's partner is the one before it: batches come in a fresh random order every epoch,
        # so this is a random pairing (torchvision's MixUp and CutMix roll the batch the same way).
        partner = torch.arange(-1, count - 1, device=device).remainder(count)
        # A batch of one is its own partner: left unmixed, not mixed with itself (its boxes would double).
        lam = torch.where(partner == torch.arange(count, device=device), torch.ones_like(lam), lam)
        return lam, partner


def _mix_targets(y: torch.Tensor, lam: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    return lam.view(-1, 1) * y + (1 - lam.view(-1, 1)) * y[partner]


def weighted_rows(rows: torch.Tensor) -> torch.Tensor:
    """Return box rows (B, M, 7) with an area column (the box's where there was none) and a weight column (1 where none)."""
    if rows.shape[-1] <= AREA:
        rows = torch.cat([rows, box_area(rows[..., 1:5]).unsqueeze(-1)], -1)
    if rows.shape[-1] <= WEIGHT:
        rows = torch.cat([rows, torch.ones_like(rows[..., :1])], -1)
    return rows


def _kept(rows: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Return rows with those not kept (and padding) turned into padding (class -1)."""
    keep = keep & (rows[..., 0] >= 0)
    return torch.where(keep.unsqueeze(-1), rows, torch.full_like(rows, -1.0))


@dataclass(frozen=True)
class MixUp(_Mixing):
    """Blend each image with a partner: lambda x + (1 - lambda) x', the targets likewise."""

    tag: ClassVar[str] = "mixup"
    carries: ClassVar[bool | frozenset[str]] = frozenset({"boxes"})
    alpha: float = 0.2  # Zhang et al.'s ImageNet setting; they use 1.0 on CIFAR-10

    def apply(self, x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, partner: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the blended images and soft targets."""
        return torch.lerp(x[partner], x, lam.to(x.dtype).view(-1, 1, 1, 1)), _mix_targets(y, lam, partner)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the mixed batch and its soft targets (B, K)."""
        lam, partner = self._draw(x.shape[0], generator, x.device)
        return self.apply(x, y, lam, partner)

    def with_targets(self, x: torch.Tensor, target: torch.Tensor, generator: torch.Generator,
                     fill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the blended batch and both images' box rows (B, 2M, 7), each weighted by its image's share."""
        if kind_of(target) is not TargetKind.BOXES:
            raise ValueError("mixup blends box targets only")  # refused when the recipe is read
        lam, partner = self._draw(x.shape[0], generator, x.device)
        rows = weighted_rows(target)
        own, theirs = rows.clone(), rows[partner].clone()
        own[..., WEIGHT] *= lam.view(-1, 1)
        theirs[..., WEIGHT] *= (1 - lam).view(-1, 1)
        # An image left unmixed (lambda 1) takes none of its partner's boxes.
        mixed = torch.cat([_kept(own, own[..., WEIGHT] > 0), _kept(theirs, theirs[..., WEIGHT] > 0)], 1)
        return torch.lerp(x[partner], x, lam.to(x.dtype).view(-1, 1, 1, 1)), mixed


@dataclass(frozen=True)
class CutMix(_Mixing):
    """Paste a box of a partner image into each image; the targets mix by the pasted area."""

    tag: ClassVar[str] = "cutmix"

    @staticmethod
    def _patch(lam: torch.Tensor, centre: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, ...]:
        """Return each image's pasted patch (top, left, bottom, right), clipped to the image."""
        side = (1 - lam).sqrt()
        h, w = (side * height).round(), (side * width).round()
        top = (centre[:, 0] * height).floor() - torch.div(h, 2, rounding_mode="floor")
        left = (centre[:, 1] * width).floor() - torch.div(w, 2, rounding_mode="floor")
        bottom, right = (top + h).clamp(0, height), (left + w).clamp(0, width)
        return top.clamp(0, height), left.clamp(0, width), bottom, right

    def _paste(self, x: torch.Tensor, partner: torch.Tensor, patch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Return images (or masks, B x H x W) with each partner's patch pasted in."""
        top, left, bottom, right = patch
        if base.host_side(x.device) and not self.per_sample:
            # One patch for the batch: on the CPU its corners cost nothing to read, and only the patch is copied.
            y0, y1, x0, x1 = (int(v[0]) for v in (top, bottom, left, right))
            out = x.clone()
            out[..., y0:y1, x0:x1] = x[..., y0:y1, x0:x1][partner]
            return out
        inside = box_mask(top, left, bottom - top, right - left, *x.shape[-2:])
        return torch.where(inside if x.ndim == 4 else inside.squeeze(1), x[partner], x)

    def apply(self, x: torch.Tensor, y: torch.Tensor, lam: torch.Tensor, partner: torch.Tensor,
              centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the pasted images and soft targets, lambda corrected to the patch's clipped area."""
        height, width = x.shape[-2:]
        patch = self._patch(lam, centre, height, width)
        top, left, bottom, right = patch
        area = ((bottom - top) * (right - left)) / (height * width)
        return self._paste(x, partner, patch), _mix_targets(y, 1 - area, partner)

    def _draws(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (lambda, partner, patch centre) per image."""
        count = x.shape[0]
        lam, partner = self._draw(count, generator, x.device)
        draws = count if self.per_sample else 1
        centre = torch.rand(draws, 2, generator=generator, device=x.device).expand(count, 2)
        return lam, partner, centre

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the mixed batch and its soft targets (B, K)."""
        return self.apply(x, y, *self._draws(x, generator))

    def with_targets(self, x: torch.Tensor, target: torch.Tensor, generator: torch.Generator,
                     fill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the pasted batch and its masks pasted alike, or its box rows (B, 2M, 5+): the visible own and pasted boxes."""
        lam, partner, centre = self._draws(x, generator)
        patch = self._patch(lam, centre, *x.shape[-2:])
        out = self._paste(x, partner, patch)
        if kind_of(target) is TargetKind.MASKS:
            return out, self._paste(target, partner, patch)
        top, left, bottom, right = (v.view(-1, 1) for v in patch)
        boxes, theirs = target[..., 1:5], target[partner]
        area = box_area(boxes).clamp_min(1e-6)
        covered = torch.stack([torch.maximum(boxes[..., 0], left), torch.maximum(boxes[..., 1], top),
                               torch.minimum(boxes[..., 2], right), torch.minimum(boxes[..., 3], bottom)], -1)
        own = _kept(target, 1 - box_area(covered) / area >= VISIBLE)
        inside = torch.stack([theirs[..., 1].clamp(left, right), theirs[..., 2].clamp(top, bottom),
                              theirs[..., 3].clamp(left, right), theirs[..., 4].clamp(top, bottom)], -1)
        sides, before = inside[..., 2:] - inside[..., :2], theirs[..., 3:5] - theirs[..., 1:3]
        # As settle: a box the patch left thinner than MIN_SIDE goes, one that was that thin already stays.
        shown = (box_area(inside) / box_area(theirs[..., 1:5]).clamp_min(1e-6) >= VISIBLE) & (
            (sides >= MIN_SIDE) | (sides >= before - 1e-4)).all(-1)
        return out, torch.cat([own, _kept(rebox(theirs, inside), shown)], 1)


MIXING = (MixUp, CutMix)
