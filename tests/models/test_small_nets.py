"""CIFAR-sized classics: Network in Network, All-CNN-C and the course's CIFAR-100 network."""

import pytest
import torch
from torch import nn

from cnnlab.inspect import summary
from cnnlab.models import model_info
from cnnlab.models.allconv import all_cnn_c
from cnnlab.models.course import course_cifar100
from cnnlab.models.nin import nin
from tests.models.helpers import check_contract

BUILDERS = {"nin": nin, "all_cnn_c": all_cnn_c, "course_cifar100": course_cifar100}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _conv(out_c: int, in_c: int, k: int | tuple[int, int], bias: bool = True) -> int:
    kh, kw = (k, k) if isinstance(k, int) else k
    return out_c * in_c * kh * kw + (out_c if bias else 0)


def test_nin_parameter_count_by_hand() -> None:
    by_hand = (
        _conv(192, 3, 5) + _conv(160, 192, 1) + _conv(96, 160, 1)  # mlpconv 1
        + _conv(192, 96, 5) + _conv(192, 192, 1) + _conv(192, 192, 1)  # mlpconv 2
        + _conv(192, 192, 3) + _conv(192, 192, 1) + _conv(10, 192, 1)  # mlpconv 3
    )  # fmt: skip
    assert _params(nin()) == by_hand == 966_986
    assert isinstance(nin().get_classifier(), nn.Conv2d)
    assert not any(isinstance(m, nn.Linear) for m in nin().modules())  # GAP is the classifier


def test_nin_pools() -> None:
    model = nin()
    assert isinstance(model.pool1, nn.MaxPool2d) and isinstance(model.pool2, nn.AvgPool2d)
    assert model.forward_features(torch.zeros(1, 3, 32, 32)).shape == (1, 192, 8, 8)


def test_all_cnn_c_parameter_count_by_hand() -> None:
    by_hand = (
        _conv(96, 3, 3) + _conv(96, 96, 3) + _conv(96, 96, 3)
        + _conv(192, 96, 3) + _conv(192, 192, 3) + _conv(192, 192, 3)
        + _conv(192, 192, 3) + _conv(192, 192, 1) + _conv(10, 192, 1)
    )  # fmt: skip
    assert _params(all_cnn_c()) == by_hand == 1_369_738  # "1.4 M" in the paper's Table 3


def test_all_cnn_c_has_no_pooling_and_averages_6x6() -> None:
    model = all_cnn_c()
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in model.modules())
    strides = [m.stride for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert strides.count((2, 2)) == 2
    assert model.forward_features(torch.zeros(1, 3, 32, 32)).shape == (1, 192, 6, 6)


def test_course_net_parameter_count_by_hand() -> None:
    def conv_block(in_c: int, c: int) -> int:
        # 2 x [1x3 - BN - ReLU - 3x1 - BN - ReLU], bias-free convs, BN = 2 parameters a channel
        first = _conv(c, in_c, (1, 3), False) + _conv(c, c, (3, 1), False)
        second = _conv(c, c, (1, 3), False) + _conv(c, c, (3, 1), False)
        return first + second + 4 * (2 * c)

    def sub(c: int) -> int:
        return _conv(c, c, 3, False) + 2 * c

    by_hand = conv_block(3, 32) + conv_block(32, 32) + sub(32) + conv_block(32, 128) + conv_block(128, 128)
    by_hand += sub(128) + 128 * 100 + 100
    assert _params(course_cifar100()) == by_hand == 550_596  # DESIGN table


def test_course_net_layers_follow_the_deck() -> None:
    model = course_cifar100()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    assert [c.kernel_size for c in model.block1.modules() if isinstance(c, nn.Conv2d)] == [(1, 3), (3, 1)] * 2
    assert len([m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]) == len(convs) == 18
    assert model.sub1.conv.stride == (2, 2) and model.sub2.conv.stride == (2, 2)
    assert model.forward_features(torch.zeros(1, 3, 32, 32)).shape == (1, 128, 8, 8)


@pytest.mark.parametrize("name, classes", [("nin", 10), ("all_cnn_c", 10), ("course_cifar100", 100)])
def test_registry_entries(name: str, classes: int) -> None:
    info = model_info(name)
    assert (info.input_size, info.small_input, info.default_classes) == ((3, 32, 32), True, classes)
    assert BUILDERS[name]().num_classes == classes
    assert summary(name, info.input_size).total_params == _params(BUILDERS[name]())


@pytest.mark.parametrize("name", list(BUILDERS))
def test_forward_backward_and_contract(name: str) -> None:
    torch.manual_seed(0)
    model = BUILDERS[name](num_classes=5)
    params = list(model.parameters())  # before reset_classifier swaps the head
    features = check_contract(model, torch.randn(2, 3, 32, 32), 5)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    assert features.shape[1] == model.num_features
