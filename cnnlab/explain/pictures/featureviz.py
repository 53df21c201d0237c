"""Images made by the network: activation maximisation (Olah et al. 2017, "Feature Visualization")
and DeepDream (Mordvintsev et al. 2015).

Both take a model on pixels in [0, 1] (wrap a run's model in `PixelModel`), so every image made
stays in the valid range: activation maximisation through a sigmoid on its parameters, DeepDream
by clamping after each step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.hooks import forward_to, model_device, preserved, resolve_layer


class Parameterisation(StrEnum):
    """How the optimised tensor becomes an image."""

    PIXEL = "pixel"  # one free value per pixel
    FOURIER = "fourier"  # a spectrum scaled by 1/f, so every frequency learns at the same rate
    DECORRELATED = "decorrelated"  # the Fourier spectrum, in decorrelated colour channels


class Objective(StrEnum):
    """What is raised in the layer's output."""

    CHANNEL = "channel"  # the channel's spatial mean
    NEURON = "neuron"  # the channel's centre unit
    LAYER = "layer"  # the mean square of the whole layer (DeepDream's objective)


def colour_matrix(images: torch.Tensor) -> torch.Tensor:
    """Return the square root (C, C) of the pixels' colour covariance, scaled so its largest column has norm 1."""
    pixels = images.float().transpose(0, 1).flatten(1)  # (C, N*H*W)
    covariance = torch.cov(pixels)
    values, vectors = torch.linalg.eigh(covariance)
    root = vectors @ torch.diag(values.clamp(min=0).sqrt()) @ vectors.T
    # Olah et al. scale by the largest column norm, so a unit step moves no colour more than one pixel step.
    return root / root.norm(dim=0).max().clamp(min=1e-12)


class ImageParameters:
    """A batch of images (B, C, H, W) in [0, 1], made from free tensors by one parameterisation."""

    def __init__(self, shape: tuple[int, int, int, int], kind: Parameterisation, *, colour: torch.Tensor | None = None,
                 device: torch.device | str = "cpu", seed: int = 0, decay: float = 1.0) -> None:
        generator = torch.Generator().manual_seed(seed)
        batch, channels, height, width = shape
        self.kind, self.shape = Parameterisation(kind), shape
        if self.kind is Parameterisation.PIXEL:
            self.tensors = [(torch.randn(shape, generator=generator) * 0.01).to(device).requires_grad_(True)]
            self.scale = None
        else:
            spectrum = (batch, channels, height, width // 2 + 1, 2)
            self.tensors = [(torch.randn(spectrum, generator=generator) * 0.01).to(device).requires_grad_(True)]
            fy = torch.fft.fftfreq(height).view(-1, 1)
            fx = torch.fft.rfftfreq(width).view(1, -1)
            frequency = (fy ** 2 + fx ** 2).sqrt()  # cycles per pixel
            # 1/f scaling (Olah et al. 2017, "Fourier basis"): natural images' spectra fall as 1/f.
            self.scale = (1.0 / frequency.clamp(min=1.0 / max(height, width)) ** decay).to(device)
        mixing = torch.eye(channels)
        if self.kind is Parameterisation.DECORRELATED and channels == 3:
            mixing = colour if colour is not None else torch.eye(3)
        self.mixing = mixing.float().to(device)

    def __call__(self) -> torch.Tensor:
        """Return the images (B, C, H, W) in [0, 1] the parameters make now."""
        raw = self.tensors[0]
        if self.scale is not None:
            spectrum = torch.view_as_complex(raw) * self.scale
            height, width = self.shape[-2:]
            raw = torch.fft.irfft2(spectrum, s=(height, width), norm="ortho") / 4  # (B, C, H, W)
        raw = torch.einsum("dc,bchw->bdhw", self.mixing, raw)
        return torch.sigmoid(raw)


def robust(images: torch.Tensor, generator: torch.Generator, *, jitter: float, scales: tuple[float, ...],
           rotation: float) -> torch.Tensor:
    """Return the images each randomly shifted by up to `jitter` pixels, scaled by one of `scales` and turned by up to `rotation` degrees."""
    count, _, height, width = images.shape
    angle = (torch.rand(count, generator=generator) * 2 - 1) * math.radians(rotation)
    scale = torch.tensor(scales)[torch.randint(len(scales), (count,), generator=generator)]
    shift = (torch.rand(count, 2, generator=generator) * 2 - 1) * jitter
    theta = torch.zeros(count, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = angle.cos() / scale, -angle.sin() / scale
    theta[:, 1, 0], theta[:, 1, 1] = angle.sin() / scale, angle.cos() / scale
    theta[:, 0, 2], theta[:, 1, 2] = shift[:, 0] * 2 / width, shift[:, 1] * 2 / height  # pixels -> [-1, 1]
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _score(act: torch.Tensor, channels: torch.Tensor, objective: Objective) -> torch.Tensor:
    """Return the objective (B,) of each image's own channel in a layer output (B, C, h, w)."""
    if objective is Objective.LAYER:
        return act.pow(2).flatten(1).mean(1)
    chosen = act[torch.arange(len(act)), channels]  # (B, h, w)
    if objective is Objective.NEURON:
        return chosen[:, chosen.shape[1] // 2, chosen.shape[2] // 2]
    return chosen.flatten(1).mean(1)


def _similarity(act: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Return the mean cosine similarity of the Gram matrices of images in the same group (Olah et al.'s diversity term)."""
    flat = act.flatten(2)  # (B, C, h*w)
    gram = F.normalize((flat @ flat.transpose(1, 2)).flatten(1), dim=1)  # (B, C*C)
    same = (groups[:, None] == groups[None, :]) & ~torch.eye(len(groups), dtype=torch.bool, device=groups.device)
    if not same.any():
        return act.new_zeros(())
    return (gram @ gram.T)[same].mean()


@dataclass(frozen=True)
class Visualisation:
    """Images made by activation maximisation, and how strongly each drives its channel."""

    images: torch.Tensor  # (B, C, H, W) in [0, 1], on the host
    channels: list[int]  # the channel each image raises
    scores: torch.Tensor  # (B,) the channel's mean activation on the image as it is (no transforms)
    objective: str
    parameterisation: str


def maximise(model: nn.Module, layer: str, channels: list[int], *, image_size: tuple[int, int, int],
             parameterisation: Parameterisation | str = Parameterisation.FOURIER, objective: Objective | str = Objective.CHANNEL,
             steps: int = 512, lr: float = 0.05, per_channel: int = 1, diversity: float = 0.0, jitter: float | None = None,
             scales: tuple[float, ...] = (0.975, 1.0, 1.025), rotation: float = 2.0,
             colour: torch.Tensor | None = None, seed: int = 0) -> Visualisation:
    """Return images that maximise each channel of `layer`, made in one batch on the model's device.

    `model` takes pixels in [0, 1]. `per_channel` images per channel, pushed apart by `diversity`
    (the weight of the Gram similarity). Jitter (default: 1/32 of the side), scale and rotation
    are drawn anew each step, so the image cannot rely on a single pixel alignment. The defaults
    are milder than Olah et al.'s for 224-pixel images: on a CIFAR ResNet-20, 2 pixels of jitter,
    5 degrees and 5 % of scale left channels at 1.8x their top exemplar where these reach 2.4x.
    """
    name, _ = resolve_layer(model, layer)
    parameterisation, objective = Parameterisation(parameterisation), Objective(objective)
    if not channels:
        raise CnnlabError("activation maximisation needs at least one channel: give --channels")
    if steps < 1 or per_channel < 1:
        raise CnnlabError(f"activation maximisation needs steps >= 1 and per_channel >= 1, got {steps} and {per_channel}")
    device = model_device(model)
    order = torch.tensor([c for c in channels for _ in range(per_channel)], device=device)
    groups = torch.arange(len(channels), device=device).repeat_interleave(per_channel)
    params = ImageParameters((len(order), *image_size), parameterisation, colour=colour, device=device, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    jitter = max(1.0, image_size[-1] / 32) if jitter is None else jitter
    optimiser = torch.optim.Adam(params.tensors, lr=lr)
    with preserved(model):
        width = forward_to(model, [name], params().detach()[:1])[name].shape[1]
        if int(order.max()) >= width or int(order.min()) < 0:
            raise CnnlabError(f"layer {name} has channels 0-{width - 1}: choose channels in that range")
        for _ in range(steps):
            act = forward_to(model, [name], robust(params(), generator, jitter=jitter, scales=scales, rotation=rotation))[name]
            loss = -_score(act, order, objective).mean()
            if diversity > 0 and per_channel > 1:
                loss = loss + diversity * _similarity(act, groups)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            images = params()
            scores = _score(forward_to(model, [name], images)[name], order, Objective.CHANNEL)
    return Visualisation(images.detach().cpu(), order.tolist(), scores.cpu(), objective.value, parameterisation.value)


def channel_means(model: nn.Module, layer: str, images: torch.Tensor, channels: list[int]) -> torch.Tensor:
    """Return each image's spatial-mean activation (N, K) of `channels` in `layer`, for pixels in [0, 1]."""
    name, _ = resolve_layer(model, layer)
    with preserved(model), torch.no_grad():
        return forward_to(model, [name], images)[name][:, channels].float().flatten(2).mean(2).cpu()


def dream(model: nn.Module, image: torch.Tensor, layer: str, *, channel: int | None = None, octaves: int = 3,
          octave_scale: float = 1.4, steps: int = 10, step_size: float = 0.01, jitter: int | None = None,
          seed: int = 0) -> torch.Tensor:
    """Return `image` (C, H, W) in [0, 1] after DeepDream: gradient ascent on a layer's mean square (or one channel's mean), octave by octave.

    Each octave starts from the previous octave's result upsampled; the detail it added rides on
    the next larger copy of the original (Mordvintsev et al. 2015). Steps are normalised by the
    gradient's mean magnitude, and the image is rolled by random jitter before each one.
    """
    name, _ = resolve_layer(model, layer)
    if octaves < 1 or steps < 1:
        raise CnnlabError(f"DeepDream needs octaves >= 1 and steps >= 1, got {octaves} and {steps}")
    if image.ndim != 3:
        raise CnnlabError(f"dream takes one image (C, H, W), got shape {tuple(image.shape)}")
    device = model_device(model)
    base = image.float().to(device)[None]
    height, width = base.shape[-2:]
    sizes = [(max(8, round(height / octave_scale ** k)), max(8, round(width / octave_scale ** k))) for k in range(octaves)][::-1]
    generator = torch.Generator().manual_seed(seed)
    detail = torch.zeros_like(base)
    objective = Objective.LAYER if channel is None else Objective.CHANNEL
    picked = torch.tensor([channel or 0], device=device)
    with preserved(model):
        width = forward_to(model, [name], base)[name].shape[1] if channel is not None else 0
        if channel is not None and not 0 <= channel < width:
            raise CnnlabError(f"layer {name} has channels 0-{width - 1}: choose a channel in that range")
        for size in sizes:
            original = F.interpolate(base, size=size, mode="bilinear", align_corners=False)
            x = (original + F.interpolate(detail, size=size, mode="bilinear", align_corners=False)).clamp(0, 1)
            limit = jitter if jitter is not None else max(1, size[-1] // 16)
            for _ in range(steps):
                dy, dx = (int(v) for v in torch.randint(-limit, limit + 1, (2,), generator=generator))
                rolled = x.roll((dy, dx), (2, 3)).detach().requires_grad_(True)
                score = _score(forward_to(model, [name], rolled)[name], picked, objective).sum()
                (gradient,) = torch.autograd.grad(score, rolled)
                gradient = gradient.roll((-dy, -dx), (2, 3))
                x = (x + step_size * gradient / gradient.abs().mean().clamp(min=1e-12)).clamp(0, 1).detach()
            detail = x - original
    return x[0].cpu()
