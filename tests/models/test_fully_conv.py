"""Fully convolutional heads: the training-size logits to 1e-5, and each map cell is the model on its window."""

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models import create_model
from cnnlab.models.fully_conv import fully_convolutional


def test_lenet5_map_cells_are_the_model_on_each_window() -> None:
    torch.manual_seed(0)
    model = create_model("lenet5").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = fully_convolutional(model, (1, 32, 32))
    small = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        assert converted(small).shape == (3, 10, 1, 1)
        assert torch.allclose(converted.logits(small), model.eval()(small), atol=1e-5)
        large = torch.randn(2, 1, 48, 56)
        scores = converted(large)  # two 2x2 pools: windows every 4 pixels, (48 - 32) / 4 + 1 = 5 rows, 7 columns
        assert scores.shape == (2, 10, 5, 7)
        for i in range(5):
            for j in range(7):
                window = model(large[:, :, 4 * i : 4 * i + 32, 4 * j : 4 * j + 32])
                assert torch.allclose(scores[:, :, i, j], window, atol=1e-5), (i, j)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the user's model is untouched
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (5, 5) and m.out_channels == 120 for m in model.modules())


def test_vgg_fc6_becomes_a_7x7_convolution() -> None:
    torch.manual_seed(0)
    model = create_model("vgg11", num_classes=5, hidden=32).eval()  # a narrow head keeps the test small
    converted = fully_convolutional(model, (3, 224, 224))
    convs = [m for m in converted.head.modules() if isinstance(m, nn.Conv2d)]
    assert [m.kernel_size for m in convs] == [(7, 7), (1, 1), (1, 1)]
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(converted.logits(x), model(x), atol=1e-5)
        # Five stride-2 pools: a window every 32 pixels. The cells differ from the model on crops
        # near the borders, where VGG's padded convs see zeros in a crop and pixels in the image.
        assert converted(torch.randn(1, 3, 256, 224)).shape == (1, 5, 2, 1)


def test_global_average_pooling_moves_after_the_head() -> None:
    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    converted = fully_convolutional(model, (3, 32, 32))
    assert converted.averaged
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert converted(x).shape == (2, 10, 8, 8)  # one score per cell of the last 8x8 map
        assert torch.allclose(converted.logits(x), model(x), atol=1e-5)
        assert converted(torch.randn(1, 3, 64, 48)).shape == (1, 10, 16, 12)


def test_heads_that_do_not_convert_get_one_line() -> None:
    with pytest.raises(CnnlabError, match="cannot make this head fully convolutional") as error:
        fully_convolutional(create_model("lenet5_1998"), (1, 32, 32))  # RBF distances, not a Linear
    assert "\n" not in str(error.value)
    with pytest.raises(CnnlabError, match="no forward_features"):
        fully_convolutional(nn.Sequential(nn.Conv2d(1, 2, 3)), (1, 8, 8))
    converted = fully_convolutional(create_model("lenet5"), (1, 32, 32))
    with pytest.raises(CnnlabError, match="needs the training size"):
        converted.logits(torch.randn(1, 1, 40, 40))
