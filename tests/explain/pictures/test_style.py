"""Style transfer: the Gram matrix by hand, the losses it promises on random multi-scale filters, and weights files it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.explain.pictures.style import (
    RandomFeatures,
    default_layers,
    gram,
    style_transfer,
    vgg_features,
)
from tests.explain.support import unchanged


def test_gram_by_hand() -> None:
    features = torch.arange(12.0).view(1, 2, 2, 3)  # channels [0..5] and [6..11]
    a, b = torch.arange(6.0), torch.arange(6.0, 12.0)
    expected = torch.tensor([[a @ a, a @ b], [b @ a, b @ b]]) / 6
    assert torch.allclose(gram(features)[0], expected)


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    side = 32
    yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    content = torch.stack([(xx > 0.3) & (xx < 0.7), (yy - 0.5) ** 2 + (xx - 0.5) ** 2 < 0.1, yy > 0.5]).float() * 0.8 + 0.1
    style = torch.stack([0.5 + 0.5 * torch.sin(40 * xx + 20 * yy), 0.5 + 0.5 * torch.sin(30 * yy), 0.5 + 0.5 * torch.cos(25 * (xx - yy))])
    return content, style


def test_transfer_lowers_style_and_keeps_content_on_random_filters() -> None:
    model = RandomFeatures(sizes=(3, 7, 15), width=32)
    content, style = _images()
    with unchanged(model):
        result = style_transfer(model, content, style, content_layers=["k15"], style_weight=3.0, steps=150)
    assert result.image.shape == content.shape and 0 <= result.image.min() and result.image.max() <= 1
    assert result.style_start / result.style_end > 5
    assert result.content_end < 0.5 * result.content_of_style
    assert result.history[0][1] == pytest.approx(result.style_start)


def test_lbfgs_runs_and_layers_default_per_extractor() -> None:
    model = RandomFeatures(sizes=(3, 5), width=8)
    assert default_layers(model) == (["k3"], ["k3", "k5"])
    content, style = _images()
    result = style_transfer(model, content, style, steps=5, optimiser="lbfgs")
    assert result.style_end < result.style_start
    with pytest.raises(CnnlabError, match="choose lbfgs or adam"):
        style_transfer(model, content, style, optimiser="sgd")


def test_vgg_weights_are_verified_by_the_hash_in_their_name(tmp_path: Path) -> None:
    from cnnlab.models import create_model

    with pytest.raises(CnnlabError, match="no weights file"):
        vgg_features("vgg11", tmp_path / "missing.pth")
    state = {k: v for k, v in create_model("vgg11").state_dict().items()}
    bad = tmp_path / "vgg11-00000000.pth"
    torch.save(state, bad)
    with pytest.raises(CnnlabError, match="SHA-256 prefix"):
        vgg_features("vgg11", bad)
    good = tmp_path / "vgg11.pth"
    torch.save(state, good)
    model = vgg_features("vgg11", good)
    content, style = default_layers(model)
    assert content == ["model.features.block4.conv2.act"] and style[0] == "model.features.block1.conv1.act"
