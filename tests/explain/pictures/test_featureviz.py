"""Activation maximisation and DeepDream raise their objective, stay in [0, 1] and leave the model as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.explain.pictures.featureviz import (
    ImageParameters,
    channel_means,
    colour_matrix,
    dream,
    maximise,
    robust,
)
from tests.explain.support import unchanged


def _net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)).train()


@pytest.mark.parametrize("kind", ["pixel", "fourier", "decorrelated"])
def test_maximise_beats_random_images_per_parameterisation(kind: str) -> None:
    model = _net()
    colour = colour_matrix(torch.rand(16, 3, 8, 8) * torch.tensor([1.0, 0.8, 0.6]).view(1, 3, 1, 1))
    with unchanged(model):
        made = maximise(model, "3", [0, 5], image_size=(3, 16, 16), parameterisation=kind, steps=60, lr=0.1, colour=colour)
        random = channel_means(model, "3", torch.rand(64, 3, 16, 16), [0, 5]).max(0).values
    assert made.images.shape == (2, 3, 16, 16) and made.images.min() >= 0 and made.images.max() <= 1
    assert made.channels == [0, 5]
    assert (made.scores > 1.5 * random).all(), (made.scores, random)  # the best of 64 random images
    measured = channel_means(model, "3", made.images, [0, 5])
    assert torch.allclose(measured.diagonal(), made.scores, atol=1e-5)  # the score is the clean image's own


def test_diversity_pushes_a_channels_images_apart() -> None:
    model = _net()
    def spread(weight: float) -> float:
        made = maximise(model, "3", [2], image_size=(3, 16, 16), per_channel=3, diversity=weight, steps=40, lr=0.1, seed=3)
        flat = made.images.flatten(1)
        return float(torch.cdist(flat, flat).sum())
    assert spread(5.0) > spread(0.0)


def test_parameters_and_transforms() -> None:
    params = ImageParameters((2, 3, 12, 10), "fourier")
    image = params()
    assert image.shape == (2, 3, 12, 10) and 0 < image.min() and image.max() < 1
    shifted = robust(torch.rand(4, 3, 12, 12), torch.Generator().manual_seed(0), jitter=0.0, scales=(1.0,), rotation=0.0)
    assert shifted.shape == (4, 3, 12, 12)
    x = torch.rand(4, 3, 12, 12)
    assert torch.allclose(robust(x, torch.Generator(), jitter=0.0, scales=(1.0,), rotation=0.0), x, atol=1e-5)  # identity when off
    root = colour_matrix(torch.rand(8, 3, 4, 4))
    assert root.shape == (3, 3) and torch.allclose(root, root.T, atol=1e-6) and root.norm(dim=0).max() == pytest.approx(1.0)


def test_dream_raises_the_layer_and_stays_in_range() -> None:
    model = _net()
    image = torch.rand(3, 24, 24) * 0.5 + 0.25
    with unchanged(model):
        before = channel_means(model, "3", image[None], list(range(8))).pow(2).mean()
        dreamt = dream(model, image, "3", octaves=2, steps=8)
        after = channel_means(model, "3", dreamt[None], list(range(8))).pow(2).mean()
    assert dreamt.shape == image.shape and dreamt.min() >= 0 and dreamt.max() <= 1
    assert after > before
    assert not torch.equal(dreamt, image)
