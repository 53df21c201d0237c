"""Analytic and effective receptive fields."""

import math

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.receptive import analytic_receptive_fields, effective_receptive_field


def _stack(depth: int) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(depth)])


def test_analytic_field_of_a_conv_stack() -> None:
    rows = analytic_receptive_fields(_stack(5), (1, 32, 32))
    assert [r.receptive_field[0] for r in rows] == [3, 5, 7, 9, 11]  # r grows by k-1 per layer


def test_erf_support_equals_the_analytic_field() -> None:
    erf = effective_receptive_field(_stack(4), (1, 21, 21), samples=2)
    support = (erf.map > 0).nonzero()
    extent = support.max(dim=0).values - support.min(dim=0).values + 1
    assert extent.tolist() == [9, 9]  # 4 layers of 3x3: 9x9, and nothing outside it
    assert erf.map.sum().item() == pytest.approx(1.0)


def _box_stack(depth: int) -> nn.Sequential:
    net = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1, bias=False) for _ in range(depth)])
    for layer in net:
        nn.init.constant_(layer.weight, 1 / 9)
    return net


@pytest.mark.parametrize("depth", [6, 12, 24])
def test_erf_is_gaussian_and_grows_like_sqrt_depth(depth: int) -> None:
    # Luo et al. 2016: with uniform weights the gradient is the n-fold convolution of a 3x3 box,
    # a Gaussian of variance n * 2/3 per axis (the box's variance is 2/3) by the central limit
    # theorem. A 2D Gaussian holds 95 % of its mass within sqrt(-2 ln 0.05) sigma = 2.448 sigma.
    erf = effective_receptive_field(_box_stack(depth), (1, 61, 61), samples=1)
    expected = 2.448 * math.sqrt(depth * 2 / 3)
    assert erf.radius == pytest.approx(expected, abs=0.5)
    if depth >= 12:
        assert erf.radius < 0.6 * (1 + 2 * depth) / 2  # far inside the analytic field
    assert erf.centre == pytest.approx((30.0, 30.0), abs=1e-3)


def test_erf_leaves_the_model_alone() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 3, padding=1)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    effective_receptive_field(model, (1, 9, 9), samples=2)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks for m in model.modules())


def test_erf_of_an_inner_layer_and_errors() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1), nn.Flatten())
    erf = effective_receptive_field(model, (1, 11, 11), layer="0", samples=1)
    assert ((erf.map > 0).sum().item()) == 9
    with pytest.raises(CnnlabError, match="no spatial dimensions"):
        effective_receptive_field(model, (1, 11, 11), samples=1)
    with pytest.raises(CnnlabError, match="no layer"):
        effective_receptive_field(model, (1, 11, 11), layer="9", samples=1)


def test_erf_needs_at_least_one_sample() -> None:
    with pytest.raises(CnnlabError, match="samples >= 1"):
        effective_receptive_field(_stack(2), (1, 9, 9), samples=0)
