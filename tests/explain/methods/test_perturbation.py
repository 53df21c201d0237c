"""Occlusion against an explicit loop; RISE against its formula; KernelSHAP against exact Shapley values; LIME on a linear model."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from cnnlab.explain import attribute, verify_no_hooks
from cnnlab.explain.methods.perturbation import rise_masks, window_grid
from cnnlab.explain.methods.superpixels import grid_segments, kernel_shap
from tests.explain.support import seeded_resnet20, unchanged


def test_occlusion_equals_an_explicit_loop() -> None:
    model = seeded_resnet20()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    window, stride, fill = 8, 6, 0.25
    with unchanged(model):
        got = attribute(model, x, "occlusion", window=window, stride=stride, fill=fill, max_batch=13)
    with torch.no_grad():
        for n in range(2):
            target = int(got.targets[n])
            base = model(x[n:n + 1])[0, target]
            total = torch.zeros(32, 32)
            count = torch.zeros(32, 32)
            for r in window_grid(32, window, stride):
                for c in window_grid(32, window, stride):
                    occluded = x[n:n + 1].clone()
                    occluded[..., r:r + window, c:c + window] = fill
                    total[r:r + window, c:c + window] += base - model(occluded)[0, target]
                    count[r:r + window, c:c + window] += 1
            torch.testing.assert_close(got.maps[n, 0], total / count, rtol=1e-4, atol=1e-5)
    assert window_grid(32, 8, 6) == [0, 6, 12, 18, 24]  # the last window sits flush with the edge


def test_rise_equals_its_formula() -> None:
    model = seeded_resnet20()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    got = attribute(model, x, "rise", masks=40, cells=4, p=0.5, seed=3, max_batch=17)
    masks = rise_masks(40, 4, 0.5, (32, 32), torch.Generator().manual_seed(3))
    assert masks.shape == (40, 32, 32) and 0 <= float(masks.min()) and float(masks.max()) <= 1
    with torch.no_grad():
        for n in range(2):
            probs = torch.stack([model(x[n:n + 1] * m)[0].softmax(0)[got.targets[n]] for m in masks])
            expected = (probs[:, None, None] * masks).sum(0) / (40 * 0.5)
            torch.testing.assert_close(got.maps[n, 0], expected, rtol=1e-4, atol=1e-6)
    verify_no_hooks(model)


def _exact_shapley(value, m: int) -> torch.Tensor:
    """Shapley values by enumerating all coalitions: phi_i = sum_S |S|!(M-|S|-1)!/M! (v(S + i) - v(S))."""
    phi = torch.zeros(m, dtype=torch.float64)
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for size in range(m):
            for subset in itertools.combinations(others, size):
                z = torch.zeros(1, m, dtype=torch.float64)
                z[0, list(subset)] = 1
                with_i = z.clone()
                with_i[0, i] = 1
                weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                phi[i] += weight * float(value(with_i)[0, 0] - value(z)[0, 0])
    return phi


@pytest.mark.parametrize("m", [3, 6, 10])
def test_kernel_shap_recovers_exact_shapley_values_of_an_interaction(m: int) -> None:
    x = torch.linspace(1.0, 2.0, m, dtype=torch.float64)
    b = torch.linspace(-0.5, 0.3, m, dtype=torch.float64)

    def value(z: torch.Tensor) -> torch.Tensor:  # f = x1 x2 + x3 at the mixed point z x + (1 - z) b
        point = z * x + (1 - z) * b
        return (point[:, 0] * point[:, 1] + point[:, 2])[None]

    exact = _exact_shapley(value, m)
    got = kernel_shap(value, m, samples=2 ** m)[0]
    torch.testing.assert_close(got, exact, rtol=1e-6, atol=1e-6)


def _plain_fit(value, m: int) -> torch.Tensor:
    """An unweighted least-squares fit over every coalition: it gives Banzhaf values, not Shapley values."""
    z = ((torch.arange(1, 2 ** m - 1)[:, None] >> torch.arange(m)[None]) & 1).double()
    design = torch.cat([torch.ones(len(z), 1, dtype=torch.float64), z], 1)
    return torch.linalg.lstsq(design, value(z)[0][:, None]).solution[1:, 0]


def test_the_shapley_kernel_is_what_makes_the_fit_shapley() -> None:
    """For f = x1 x2 + x3 Banzhaf and Shapley agree (pairwise terms split evenly under both); for
    f = x1 x2 x3 + x4 they differ, and only the kernel-weighted fit gives the Shapley values."""
    m = 8
    x = torch.linspace(1.0, 2.0, m, dtype=torch.float64)
    b = torch.linspace(-0.5, 0.3, m, dtype=torch.float64)

    def pairwise(z: torch.Tensor) -> torch.Tensor:
        p = z * x + (1 - z) * b
        return (p[:, 0] * p[:, 1] + p[:, 2])[None]

    def triple(z: torch.Tensor) -> torch.Tensor:
        p = z * x + (1 - z) * b
        return (p[:, 0] * p[:, 1] * p[:, 2] + p[:, 3])[None]

    torch.testing.assert_close(_plain_fit(pairwise, m), _exact_shapley(pairwise, m))
    exact = _exact_shapley(triple, m)
    torch.testing.assert_close(kernel_shap(triple, m, samples=2 ** m)[0], exact, rtol=1e-6, atol=1e-6)
    assert (_plain_fit(triple, m) - exact).abs().max() > 1e-2


def test_kernel_shap_recovers_a_linear_model_per_superpixel() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    x = torch.rand(2, 3, 8, 8)
    segments = grid_segments(x, 16)[0]  # 16 square cells
    with unchanged(model):
        got = attribute(model, x, "kernel_shap", target=2, samples=4096, segments=segments, fill=0.0)
    contribution = (model[1].weight[2].view(3, 8, 8) * x).sum(1)  # w . (x - 0) per pixel
    per_cell = torch.zeros(2, 16).index_add_(1, segments.flatten(), contribution.flatten(1))
    torch.testing.assert_close(got.extras["weights"].float(), per_cell, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(got.maps[:, 0], per_cell.gather(1, segments.flatten().expand(2, -1)).view(2, 8, 8), rtol=1e-3, atol=1e-3)
    # Sampled coalitions (2^30 of them would not fit): still close on 30 features, and exact in total.
    many = grid_segments(x, 30)[0]
    sampled = attribute(model, x, "kernel_shap", target=2, samples=3000, segments=many, fill=0.0)
    cells = int(many.max()) + 1
    truth = torch.zeros(2, cells).index_add_(1, many.flatten(), contribution.flatten(1))
    assert (sampled.extras["weights"].float() - truth).abs().max() < 1e-3
    verify_no_hooks(model)


def test_lime_recovers_a_linear_model_with_a_tiny_ridge() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    x = torch.rand(2, 3, 8, 8)
    segments = grid_segments(x, 16)[0]
    got = attribute(model, x, "lime", target=1, samples=600, segments=segments, fill=0.0, ridge=1e-6)
    contribution = (model[1].weight[1].view(3, 8, 8) * x).sum(1)
    per_cell = torch.zeros(2, 16).index_add_(1, segments.flatten(), contribution.flatten(1))
    # The score is linear in the kept cells, so the weighted fit is exact whatever the kernel.
    torch.testing.assert_close(got.extras["weights"], per_cell, rtol=1e-3, atol=1e-4)
    verify_no_hooks(model)


def test_lime_and_shap_with_slic_and_quickshift_superpixels() -> None:
    pytest.importorskip("skimage")
    model = seeded_resnet20()
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(0)), size=(32, 32), mode="bilinear")
    for superpixels in ("slic", "quickshift"):
        lime = attribute(model, smooth, "lime", samples=64, superpixels=superpixels, segments=20)
        assert lime.options["superpixels"] >= 2
        assert lime.maps.shape == (1, 1, 32, 32) and torch.isfinite(lime.maps).all()
    verify_no_hooks(model)
