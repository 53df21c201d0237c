"""Embeddings: penultimate features are the last Linear's input, PCA matches scikit-learn, the PNG is written."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import nn

from cnnlab.explain.pictures.embedding import embed, penultimate, save_embedding
from cnnlab.explain.pictures.exemplars import batches_of
from tests.explain.support import unchanged


def test_penultimate_pca_and_tsne(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    images = torch.rand(40, 1, 8, 8)
    with unchanged(model):
        features = penultimate(model, batches_of(images, 16))
    with torch.no_grad():
        assert torch.allclose(features, model[:4](images), atol=1e-6)
    points = embed(features, "pca")
    centred = features.double() - features.double().mean(0)
    variance = torch.linalg.svdvals(centred)[:2] ** 2 / (len(features) - 1)
    assert torch.allclose(points.double().var(0), variance, rtol=1e-4)
    assert embed(features, "tsne").shape == (40, 2)
    labels = torch.arange(40) % 3
    out = save_embedding(points, labels, ("a", "b", "c"), tmp_path / "e.png", "test")
    assert Image.open(out).size[0] >= 500
