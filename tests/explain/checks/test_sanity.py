"""Sanity checks: the rank correlation against scipy, and the cascade telling a model-blind map from saliency."""

from __future__ import annotations

import torch

from cnnlab.explain import verify_no_hooks
from cnnlab.explain.checks.sanity import (
    cascading_randomization,
    data_randomization,
    spearman,
    weighted_layers,
)
from cnnlab.explain.kit.registry import METHODS, register
from cnnlab.explain.kit.types import Result
from tests.explain.support import seeded_resnet20, unchanged


def test_spearman_equals_scipy() -> None:
    from scipy.stats import spearmanr

    a, b = torch.randn(3, 50, generator=torch.Generator().manual_seed(0)), torch.randn(3, 50)
    b[1] = a[1] * 2 + 0.1 * b[1]
    a[2, :20] = 0.0  # ties, as a map's zero background has
    b[2, 10:25] = 1.5
    ours = spearman(a, b)
    for i in range(3):
        assert abs(float(ours[i]) - spearmanr(a[i], b[i]).statistic) < 1e-9


def test_cascade_separates_a_model_blind_map_from_saliency() -> None:
    """A 'method' that ignores the model (the image's magnitude) stays at similarity 1; saliency falls."""
    @register("test_model_blind", "gradient")
    def blind(ctx, images, targets, **options):  # noqa: ANN001, ANN202
        return Result(images.abs(), {})

    try:
        model = seeded_resnet20()
        x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        with unchanged(model):
            blind_result = cascading_randomization(model, x, "test_model_blind")
            saliency = cascading_randomization(model, x, "saliency")
    finally:
        del METHODS["test_model_blind"]
    layers = weighted_layers(model)[::-1]
    assert [row["layer"] for row in saliency.rows] == ["original", *layers]
    assert saliency.rows[0]["spearman_abs"] > 0.999 and saliency.rows[0]["ssim"] > 0.999
    assert all(row["spearman_abs"] > 0.999 for row in blind_result.rows)
    assert saliency.final()["spearman_abs"] < 0.5 < blind_result.final()["spearman_abs"]
    verify_no_hooks(model)


def test_data_randomization_compares_two_models() -> None:
    model, other = seeded_resnet20(0), seeded_resnet20(5)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    same = data_randomization(model, model, x, "gradcam")
    different = data_randomization(model, other, x, "gradcam")
    assert same["spearman_abs"] > 0.999 and same["ssim"] > 0.999
    assert different["spearman_abs"] < 0.9
    verify_no_hooks(model)
    verify_no_hooks(other)
