"""What every augmentation op shares: per-image coins and parameters, start-up checks, selection.

An op is a frozen dataclass whose fields are its parameters, checked when the recipe is read;
`tag` is its name in a recipe (`{op: rotate, degrees: 15, p: 0.5}`). It takes float images in
[0, 1] (B, C, H, W) on any device, draws a coin and parameters for every image from a generator
on that device (nothing crosses to the host), and returns the same shape, dtype and range.
`sample` draws the parameters and `apply` uses them, so a test can fix them and compare each
image against torchvision's functional op.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch

from cnnlab.errors import CnnlabError

Params = dict[str, torch.Tensor]
SIZED = frozenset({"center_crop", "random_crop"})  # ops whose output is `size` x `size`, not the input's size


def check(ok: bool, message: str) -> None:
    """Raise a one-line recipe error naming the op and the key when `ok` is false."""
    if not ok:
        raise CnnlabError(f"recipe: augment {message}")


@dataclass(frozen=True)
class DataFacts:
    """What start-up checks and data-fitted ops need to know of the training images."""

    channels: int
    height: int
    width: int
    mean: tuple[float, ...]  # per channel, 0..1: the fill of pixels an op brings in (0 after normalisation)
    eigenvalues: tuple[float, ...] = ()  # of the RGB covariance, for PCA lighting (AlexNet)
    eigenvectors: tuple[tuple[float, ...], ...] = ()  # columns are the eigenvectors


def _frozen(values: Any) -> Any:
    return tuple(_frozen(v) for v in values) if isinstance(values, list | tuple) else values


@functools.lru_cache(maxsize=256)
def _constant(values: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype).to(device)


def constant(values: Any, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return a small constant tensor on `device`, made once: building it anew each step would make the host wait."""
    return _constant(_frozen(values), device, dtype)


def uniform(low: float | torch.Tensor, high: float | torch.Tensor, count: int, generator: torch.Generator,
            device: torch.device) -> torch.Tensor:
    """Return `count` draws from U(low, high) on `device`."""
    return low + (high - low) * torch.rand(count, generator=generator, device=device)


def signs(count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Return `count` random signs (+1 or -1) on `device`."""
    return torch.randint(0, 2, (count,), generator=generator, device=device).float() * 2 - 1


def host_side(device: torch.device) -> bool:
    """Return whether ops may read tensor values on the host here (the CPU: no device to wait for)."""
    return device.type == "cpu"


def select(chosen: torch.Tensor, x: torch.Tensor, fn: Any) -> torch.Tensor:
    """Return x with fn applied to the images `chosen` marks; fn(index or None) maps a batch slice.

    On the CPU only the chosen images are computed (all of them without a gather when every image
    is chosen); on an accelerator every image is computed and masked, because picking a
    data-dependent subset would make the host wait for the device.
    """
    if x.shape[0] == 0:
        return x
    if host_side(x.device):
        index = chosen.nonzero().squeeze(1)
        if len(index) == 0:
            return x
        if len(index) == len(x):
            return fn(None).to(x.dtype)
        return x.index_copy(0, index, fn(index).to(x.dtype))
    return torch.where(chosen.view(-1, 1, 1, 1), fn(None).to(x.dtype), x)


def take(params: Params, index: torch.Tensor | None) -> Params:
    """Return the parameters of the images at `index` (all for None)."""
    return params if index is None else {k: v[index] for k, v in params.items()}


@dataclass(frozen=True, kw_only=True)  # p by keyword: positional arguments are the op's own
class Op:
    """An op applied to each image with probability p, with its own parameters per image."""

    tag: ClassVar[str] = ""
    tag_key: ClassVar[str] = "op"
    needs_rgb: ClassVar[bool] = False  # colour ops: refused at start-up for grey images
    neutral: ClassVar[dict[str, Any]] = {}  # parameter values that make the op the identity (tests)
    moves: ClassVar[bool] = False  # geometric: masks and boxes move with the pixels (move_mask, move_boxes)
    carries: ClassVar[bool] = True  # masks and boxes survive the op: moved with it, or untouched by it
    p: float = 1.0  # probability that an image gets the op

    def __post_init__(self) -> None:
        check(0.0 <= self.p <= 1.0, f"{self.tag} p={self.p} must lie in [0, 1]")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and f.name in self.nonnegative():
                check(value >= 0, f"{self.tag} {f.name}={value} must be >= 0")

    def nonnegative(self) -> tuple[str, ...]:
        """Return the fields that a negative value would make meaningless (magnitudes, sizes)."""
        return tuple(f.name for f in fields(self) if f.name != "p")

    def check_data(self, facts: DataFacts) -> None:
        """Raise one line at start-up when the op cannot apply to these images."""
        if self.needs_rgb and facts.channels != 3:
            raise CnnlabError(f"recipe: augment {self.tag} needs RGB images but these have {facts.channels} "
                              f"channel(s): leave {self.tag} out of augment")

    def sample(self, count: int, shape: tuple[int, int, int], generator: torch.Generator,
               device: torch.device) -> Params:
        """Return this op's parameters for `count` images of `shape` (C, H, W)."""
        return {}

    def apply(self, x: torch.Tensor, fill: torch.Tensor, **params: torch.Tensor) -> torch.Tensor:
        """Return the images with the op applied with the given per-image parameters."""
        raise NotImplementedError

    def move_mask(self, mask: torch.Tensor, shape: tuple[int, int, int], **params: torch.Tensor) -> torch.Tensor:
        """Return masks (B, H, W) moved as the images of `shape` (C, H, W) are (a geometric op's; others: untouched)."""
        return mask

    def move_boxes(self, boxes: torch.Tensor, shape: tuple[int, int, int], **params: torch.Tensor) -> torch.Tensor:
        """Return box coordinates (B, M, 4) moved as the images are, not yet clipped (others: untouched)."""
        return boxes

    def _draw(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, Params]:
        """Return each image's coin and the op's parameters, drawn in the order every call draws them."""
        count, device = x.shape[0], x.device
        # p = 1 draws no coin: the first release's translate and cutout drew none, so their stream is kept.
        coin = (torch.ones(count, device=device, dtype=torch.bool) if self.p == 1.0
                else torch.rand(count, generator=generator, device=device) < self.p)
        return coin, self.sample(count, tuple(x.shape[1:]), generator, device)

    def __call__(self, x: torch.Tensor, generator: torch.Generator, fill: torch.Tensor | None = None) -> torch.Tensor:
        """Return the batch with the op applied to each image with probability p."""
        if x.shape[0] == 0:
            return x
        fill = torch.zeros(1, x.shape[1], 1, 1, device=x.device, dtype=x.dtype) if fill is None else fill
        coin, params = self._draw(x, generator)
        return select(coin, x, lambda index: self.apply(x if index is None else x[index], fill, **take(params, index)))

    def with_targets(self, x: torch.Tensor, target: torch.Tensor, generator: torch.Generator,
                     fill: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the batch and its masks (B, H, W) or box rows (B, M, 5) after the op: one coin and one draw for both."""
        from cnnlab.data.augment.targets import TargetKind, kind_of, settle

        if x.shape[0] == 0:
            return x, target
        coin, params = self._draw(x, generator)
        shape = tuple(x.shape[1:])
        if self.tag in SIZED:  # every image, to another size: nothing to select
            out = self.apply(x, fill, **params)
        else:
            out = select(coin, x, lambda index: self.apply(x if index is None else x[index], fill, **take(params, index)))
        kind = kind_of(target)
        if not self.moves or kind is TargetKind.LABELS:
            return out, target
        chosen = coin.view(-1, 1, 1)
        if kind is TargetKind.MASKS:
            moved = self.move_mask(target, shape, **params)
            return out, moved if self.tag in SIZED else torch.where(chosen, moved, target)
        rows = settle(target, self.move_boxes(target[..., 1:5], shape, **params), *out.shape[-2:])
        return out, torch.where(chosen, rows, target)
