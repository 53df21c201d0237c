"""Faithfulness: curves against hand-built cases, infidelity and max-sensitivity of exact maps."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.explain import attribute, verify_no_hooks
from cnnlab.explain.checks.faithfulness import (
    deletion_insertion,
    faithfulness,
    infidelity,
    max_sensitivity,
    pixel_curves,
    trapezoid,
)
from tests.explain.support import unchanged


class Linear2(nn.Module):
    """Logits (w . x, 0): the target-0 probability is sigmoid(w . x), and w * x is each pixel's exact share."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = (self.w * x).flatten(1).sum(1)
        return torch.stack([score, torch.zeros_like(score)], 1)


def test_trapezoid() -> None:
    curves = torch.stack([torch.full((5,), 0.3), torch.linspace(0, 1, 5)])
    torch.testing.assert_close(trapezoid(curves), torch.tensor([0.3, 0.5]))


def test_curves_start_and_end_where_they_should() -> None:
    model = Linear2().eval()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    heat = torch.rand(2, 8, 8)
    targets = torch.zeros(2, dtype=torch.long)
    deletion = pixel_curves(model, x, heat, targets, "deletion", steps=8, baseline="zero")
    insertion = pixel_curves(model, x, heat, targets, "insertion", steps=8, baseline="zero")
    with torch.no_grad():
        p_image = model(x).softmax(1)[:, 0]
        p_zero = model(torch.zeros_like(x)).softmax(1)[:, 0]
    torch.testing.assert_close(deletion[:, 0], p_image)
    torch.testing.assert_close(deletion[:, -1], p_zero)
    torch.testing.assert_close(insertion[:, 0], p_zero)
    torch.testing.assert_close(insertion[:, -1], p_image)
    # Step 4 of 8 has zeroed the 32 top-ranked pixels, by hand:
    order = heat.flatten(1).argsort(1, descending=True)[:, :32]
    half = x.clone().flatten(1).scatter(1, order, 0.0).view_as(x)
    with torch.no_grad():
        torch.testing.assert_close(deletion[:, 4], model(half).softmax(1)[:, 0])
    verify_no_hooks(model)


def test_an_exact_map_beats_the_random_ranking() -> None:
    model = Linear2().eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    exact = (model.w * x)[:, 0].detach()
    scores = deletion_insertion(model, x, exact, torch.zeros(4, dtype=torch.long), steps=16, baseline="zero")
    assert scores["deletion_auc"] < scores["random_deletion_auc"]
    assert scores["insertion_auc"] > scores["random_insertion_auc"]
    verify_no_hooks(model)


def test_infidelity_and_sensitivity_of_the_gradient_of_a_linear_model_are_zero() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).eval()
    x = torch.rand(2, 1, 8, 8)
    targets = torch.tensor([0, 2])
    with unchanged(model):
        gradient = attribute(model, x, "input_x_gradient", targets).maps / x  # w, the exact gradient
        assert float(infidelity(model, x, gradient, targets).max()) < 1e-8
        assert float(max_sensitivity(model, x, "saliency", targets).max()) < 1e-6
        rows = faithfulness(model, x, ["saliency", "integrated_gradients"], targets, steps=8, options={"integrated_gradients": {"steps": 8}})
    assert [r["method"] for r in rows] == ["saliency", "integrated_gradients"]
    assert {"deletion_auc", "random_deletion_auc", "insertion_auc", "random_insertion_auc", "infidelity", "max_sensitivity"} <= set(rows[0])
