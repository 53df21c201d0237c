"""Seeded noise: per-image streams that do not depend on the chunk size, seeded generators, and the noise tunnel."""

from __future__ import annotations

from typing import Any

import torch

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.types import Context, MethodRun, Result


def image_noise(i: torch.Tensor, s: torch.Tensor, samples: int, shape: tuple[int, ...], seed: int | None,
                like: torch.Tensor, kind: str = "normal") -> torch.Tensor:
    """Return noise (B, *shape) for (image i, sample s) pairs, drawn chunk by chunk.

    Each image has its own seeded stream of `samples` draws, so the noise of a pair does not depend
    on the chunk size or the batch it came in, and no (samples, N, ...) tensor is ever held.
    """
    out = torch.empty((len(i), *shape), device=like.device, dtype=like.dtype)
    for image in torch.unique(i).tolist():
        rows = (i == image).nonzero().squeeze(1)
        generator = torch.Generator(device=like.device).manual_seed((0 if seed is None else int(seed)) * 1_000_003 + image)
        size = (samples, *shape)  # always all of them: a shorter draw need not be a prefix of a longer one
        draws = (torch.randn(size, generator=generator, device=like.device, dtype=like.dtype) if kind == "normal"
                 else torch.rand(size, generator=generator, device=like.device, dtype=like.dtype))
        out[rows] = draws[s[rows]]
    return out


def seeded(seed: int | None, device: torch.device) -> torch.Generator:
    """Return a generator on `device` seeded with `seed` (0 when None), so a call repeats exactly."""
    return torch.Generator(device=device).manual_seed(0 if seed is None else int(seed))



def noise_scale(images: torch.Tensor, noise: float) -> torch.Tensor:
    """Return sigma per image: `noise` times the image's value range (Smilkov et al. 2017, Sec. 3)."""
    flat = images.flatten(1)
    return (noise * (flat.amax(1) - flat.amin(1))).view(-1, 1, 1, 1)


#: What a noise tunnel returns from the maps of the noised copies.
TUNNELS = {"smoothgrad": "mean", "smoothgrad_sq": "square", "vargrad": "variance"}


def smooth(run: MethodRun, kind: str = "mean") -> MethodRun:
    """Return a method that runs `run` on noised copies of each image and keeps the maps' mean, mean square or variance.

    The noise tunnel of Smilkov et al. 2017 (mean: SmoothGrad), Hooker et al. 2019 (square) and
    Adebayo et al. 2018 (variance), for any method: `samples` copies per image with Gaussian noise
    of `noise` times the image's value range, drawn per image so chunking does not change them.
    The copies of several images run `ctx.max_batch` rows at a time; the rest of the options go
    to `run`.
    """
    if kind not in TUNNELS.values():
        raise CnnlabError(f"unknown noise tunnel {kind!r}: choose {', '.join(TUNNELS.values())}")

    def smoothed(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
        samples = int(options.pop("samples", 50))
        noise = float(options.pop("noise", 0.15))
        seed = options.pop("seed", None)
        if samples < 1 or noise < 0:
            raise CnnlabError(f"a noise tunnel needs samples >= 1 and noise >= 0 (got {samples}, {noise})")
        sigma, shape = noise_scale(images, noise), tuple(images.shape[1:])
        total, sums, inner = len(images) * samples, None, None
        for start in range(0, total, ctx.max_batch):
            flat = torch.arange(start, min(total, start + ctx.max_batch), device=images.device)
            i, s = flat // samples, flat % samples
            inner = run(ctx, images[i] + sigma[i] * image_noise(i, s, samples, shape, seed, images), targets[i], **options)
            maps = inner.maps
            if sums is None:
                sums = torch.zeros((2, len(images), *maps.shape[1:]), dtype=maps.dtype, device=maps.device)
            sums.index_add_(1, i, torch.stack([maps, maps * maps]))
        assert sums is not None and inner is not None
        mean, square = sums[0] / samples, sums[1] / samples
        out = {"mean": mean, "square": square, "variance": (square - mean * mean).clamp(min=0)}[kind]
        return Result(out, {**inner.options, "samples": samples, "noise": noise, "seed": 0 if seed is None else seed})

    smoothed.__doc__ = f"Return the {kind} of {getattr(run, '__name__', 'the method')}'s maps over noised copies."
    return smoothed
