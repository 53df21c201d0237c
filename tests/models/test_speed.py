"""SpeedNet and the whitening initialisation of its first layer."""

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.models.speed import whitening_init


def test_shapes_and_whitening_width_follow_the_channels() -> None:
    model = create_model("speednet")
    assert model.whiten.out_channels == 24 and model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 256, 3, 3)
    assert create_model("speednet", in_chans=1).whiten.out_channels == 8


def test_whitened_patches_are_uncorrelated_with_unit_variance() -> None:
    torch.manual_seed(0)
    mixing = torch.randn(3, 3)
    images = torch.einsum("ij,njhw->nihw", mixing, torch.randn(300, 3, 16, 16)).cumsum(3)  # correlated, smooth
    conv = create_model("speednet").whiten
    whitening_init(conv, images, eps=1e-9)
    responses = conv(images)[:, :12].permute(0, 2, 3, 1).reshape(-1, 12).double()
    responses = responses - responses.mean(0)
    covariance = responses.T @ responses / (len(responses) - 1)
    torch.testing.assert_close(covariance, torch.eye(12, dtype=torch.float64), atol=2e-3, rtol=0)
    torch.testing.assert_close(conv.weight[12:], -conv.weight[:12])  # each filter and its negative
    assert torch.all(conv.bias == 0)


def test_whitening_needs_twice_the_patch_size() -> None:
    with pytest.raises(CnnlabError, match="needs 24 filters"):
        whitening_init(torch.nn.Conv2d(3, 16, 2), torch.randn(4, 3, 8, 8))
