"""Pooling layers against PyTorch's functional ops and hand computations."""

import math

import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError
from cnnlab.nn import (
    LpPool2d,
    SpatialPyramidPool,
    StochasticPool2d,
    fractional_max_pool,
    global_avg_pool,
    global_max_pool,
    pool,
)


def test_max_and_avg_factory_match_functional() -> None:
    x = torch.randn(2, 3, 9, 9)
    torch.testing.assert_close(pool("max", 3, 2, 1)(x), F.max_pool2d(x, 3, 2, 1))
    torch.testing.assert_close(pool("avg", 2)(x), F.avg_pool2d(x, 2))
    torch.testing.assert_close(pool("max", 3, 2, ceil_mode=True, dims=1)(x[:, :, 0]),
                               F.max_pool1d(x[:, :, 0], 3, 2, ceil_mode=True))
    with pytest.raises(CnnlabError, match="unknown pooling mode"):
        pool("median", 2)


def test_lp_pool_sum_form_is_pytorchs() -> None:
    x = torch.rand(2, 3, 8, 8) + 0.1
    torch.testing.assert_close(LpPool2d(3, 2)(x), F.lp_pool2d(x, 3, 2))
    # By hand on one window: (1^2 + 2^2 + 3^2 + 4^2)^(1/2) = sqrt(30)
    window = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert LpPool2d(2, 2)(window).item() == pytest.approx(math.sqrt(30))


def test_lp_pool_mean_form_and_its_limits() -> None:
    window = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    # Power mean: (30 / 4)^(1/2)
    assert LpPool2d(2, 2, mean=True)(window).item() == pytest.approx(math.sqrt(7.5))
    # p = 1 is the average, large p approaches the maximum.
    assert LpPool2d(1, 2, mean=True)(window).item() == pytest.approx(2.5)
    means = [LpPool2d(p, 2, mean=True)(window).item() for p in (1, 2, 4, 8, 16)]
    assert means == sorted(means) and means[-1] < 4.0  # the power mean rises toward the max
    assert means[-1] > 3.6


def test_stochastic_pool_eval_is_probability_weighted_average() -> None:
    window = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    layer = StochasticPool2d(2).eval()
    # sum(a_i * a_i / sum a) = 30 / 10
    assert layer(window).item() == pytest.approx(3.0)
    zeros = torch.zeros(1, 1, 2, 2)
    assert layer(zeros).item() == 0.0


def test_stochastic_pool_samples_in_proportion_to_activation() -> None:
    torch.manual_seed(0)
    window = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]).expand(20_000, 1, 2, 2).contiguous()
    out = StochasticPool2d(2).train()(window).flatten()
    assert set(out.unique().tolist()) <= {1.0, 2.0, 3.0, 4.0}
    for value in (1.0, 2.0, 3.0, 4.0):
        share = (out == value).float().mean().item()
        assert share == pytest.approx(value / 10.0, abs=0.015)  # ~4 standard errors


def test_stochastic_pool_shape_and_negative_inputs() -> None:
    x = torch.randn(2, 3, 8, 6)
    assert StochasticPool2d(2)(x).shape == (2, 3, 4, 3)
    assert (StochasticPool2d(2).eval()(x) >= 0).all()  # pools rectified activations


def test_fractional_max_pool_ratio_and_values() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 2, 32, 32)
    layer = fractional_max_pool(2)
    out = layer(x)
    assert out.shape[2:] == (int(32 / math.sqrt(2)), int(32 / math.sqrt(2)))  # 22: Graham 2014
    # Every output is the maximum of some 2x2 window of its channel.
    windows = F.max_pool2d(x, 2, stride=1)
    for channel in range(2):
        assert torch.isin(out[0, channel], windows[0, channel]).all()
    with pytest.raises(CnnlabError, match="output_ratio"):
        fractional_max_pool(2, 1.5)


@pytest.mark.parametrize("size", [(7, 7), (13, 9), (32, 32)])
def test_spatial_pyramid_pool_fixed_length(size: tuple[int, int]) -> None:
    layer = SpatialPyramidPool((1, 2, 4))
    x = torch.randn(2, 5, *size)
    out = layer(x)
    assert out.shape == (2, layer.output_features(5)) == (2, 5 * 21)
    torch.testing.assert_close(out[:, :5], x.amax(dim=(2, 3)))  # level 1 is the global maximum


def test_spatial_pyramid_level_two_by_hand() -> None:
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = SpatialPyramidPool((2,))(x)
    assert out.tolist() == [[5.0, 7.0, 13.0, 15.0]]  # the maxima of the four 2x2 quadrants


def test_global_pools() -> None:
    x = torch.randn(2, 3, 5, 6)
    torch.testing.assert_close(global_avg_pool()(x), F.adaptive_avg_pool2d(x, 1).flatten(1))
    torch.testing.assert_close(global_max_pool(flatten=False)(x), F.adaptive_max_pool2d(x, 1))
