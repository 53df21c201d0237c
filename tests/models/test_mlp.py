"""The MLP of the shuffled-pixels experiment: a pixel permutation is only a reordering of its first layer's weights."""

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.models.registry import create_model


def test_permuted_pixels_are_permuted_weights() -> None:
    torch.manual_seed(0)
    model = create_model("mlp").eval()
    x = torch.randn(3, 1, 32, 32)
    order = torch.randperm(32 * 32)
    permuted = x.flatten(1)[:, order].view_as(x)
    twin = create_model("mlp").eval()
    twin.load_state_dict(model.state_dict())
    with torch.no_grad():
        twin.hidden1[1].weight.copy_(model.hidden1[1].weight[:, order])  # column j now reads pixel order[j]
    torch.testing.assert_close(twin(permuted), model(x), rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in model.parameters()) == 1024 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10


def test_other_sizes_get_one_line() -> None:
    with pytest.raises(CnnlabError, match="reads 32x32 images, not 28x28"):
        create_model("mlp")(torch.zeros(1, 1, 28, 28))
