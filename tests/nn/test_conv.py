"""The conv factory and its variants against PyTorch's functional ops and hand counts."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.arithmetic import same_padding
from cnnlab.errors import CnnlabError
from cnnlab.nn import (
    ConvNormAct,
    DepthwiseSeparableConv,
    PaddedConv2d,
    SpatiallySeparableConv,
    conv,
    conv1x1,
    conv_transpose,
    depthwise_conv,
    grouped_conv,
)

torch.manual_seed(0)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4])
@pytest.mark.parametrize("dilation", [1, 2])
def test_same_padding_matches_explicit_pad_then_conv(dims: int, stride: int, kernel: int, dilation: int) -> None:
    layer = conv(2, 3, kernel, stride=stride, padding="same", dilation=dilation, dims=dims)
    size = 7 + dims  # odd and even sizes across the parametrisation
    x = torch.randn((2, 2, *[size] * dims))
    before, after = same_padding(size, kernel, stride, dilation)
    reference_input = F.pad(x, [before, after] * dims)
    functional = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[dims]
    expected = functional(reference_input, layer.weight, layer.bias, stride=stride, dilation=dilation)
    out = layer(x)
    assert out.shape[2:] == torch.Size([-(-size // stride)] * dims)
    torch.testing.assert_close(out, expected)


def test_symmetric_static_padding_returns_pytorch_layer() -> None:
    # The common case costs nothing extra: a plain nn.Conv2d with PyTorch's own padding.
    assert type(conv(3, 8, 3, padding="same")) is nn.Conv2d
    assert type(conv(3, 8, 3, stride=2, padding=1)) is nn.Conv2d
    assert isinstance(conv(3, 8, 3, stride=2, padding="same"), PaddedConv2d)
    assert isinstance(conv(3, 8, 2, padding="same"), PaddedConv2d)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_padding_modes_match_functional_pad(mode: str) -> None:
    x = torch.randn(1, 2, 9, 10)
    layer = conv(2, 4, 3, padding=2, padding_mode=mode)
    torch_mode = "constant" if mode == "zeros" else mode
    expected = F.conv2d(F.pad(x, [2, 2, 2, 2], mode=torch_mode), layer.weight, layer.bias)
    torch.testing.assert_close(layer(x), expected)
    # Asymmetric "same" (even kernel) goes through the explicit path with the same modes.
    padded = conv(2, 4, 4, padding="same", padding_mode=mode)
    expected = F.conv2d(F.pad(x, [1, 2, 1, 2], mode=torch_mode), padded.weight, padded.bias)
    torch.testing.assert_close(padded(x), expected)


def test_valid_and_full_padding() -> None:
    x = torch.randn(1, 1, 10)
    assert conv(1, 1, 3, padding="valid", dims=1)(x).shape[-1] == 8
    assert conv(1, 1, 3, padding="full", dims=1)(x).shape[-1] == 12  # i + k - 1
    assert conv(1, 1, 3, padding="full", dilation=2, dims=1)(x).shape[-1] == 14  # i + d(k-1)


def test_explicit_padding_pairs_and_state_dict_names() -> None:
    layer = conv(3, 4, 3, padding=[(0, 2), (1, 1)])
    x = torch.randn(1, 3, 6, 6)
    expected = F.conv2d(F.pad(x, [1, 1, 0, 2]), layer.weight, layer.bias)
    torch.testing.assert_close(layer(x), expected)
    # Same parameter names as nn.Conv2d: checkpoints move between the two freely.
    assert set(layer.state_dict()) == set(nn.Conv2d(3, 4, 3).state_dict())


def test_grouped_depthwise_and_pointwise_counts() -> None:
    g = grouped_conv(64, 128, 3, groups=32, bias=False)
    assert sum(p.numel() for p in g.parameters()) == 128 * (64 // 32) * 9  # ResNeXt's cardinality 32
    d = depthwise_conv(32, 3, bias=False)
    assert d.weight.shape == (32, 1, 3, 3)
    p = conv1x1(32, 64)
    assert sum(q.numel() for q in p.parameters()) == 32 * 64 + 64
    x = torch.randn(2, 64, 8, 8)
    expected = F.conv2d(x, g.weight, None, padding=1, groups=32)
    torch.testing.assert_close(g(x), expected)


def test_depthwise_separable_is_cheaper_by_the_papers_ratio() -> None:
    # MobileNet (Howard et al. 2017): cost ratio 1/N + 1/k^2 against a standard conv.
    cin, cout, k = 64, 128, 3
    separable = DepthwiseSeparableConv(cin, cout, k, norm_layer=None, act_layer=None)
    weights = sum(m.weight.numel() for m in separable.modules() if isinstance(m, nn.Conv2d))
    assert weights == cin * k * k + cin * cout
    assert weights / (cin * cout * k * k) == pytest.approx(1 / cout + 1 / k**2)
    assert separable(torch.randn(1, cin, 10, 10)).shape == (1, cout, 10, 10)


def test_spatially_separable_equals_its_two_convs() -> None:
    layer = SpatiallySeparableConv(3, 5, 3)
    x = torch.randn(1, 3, 9, 9)
    mid = F.conv2d(x, layer.vertical.weight, layer.vertical.bias, padding=(1, 0))
    expected = F.conv2d(mid, layer.horizontal.weight, layer.horizontal.bias, padding=(0, 1))
    torch.testing.assert_close(layer(x), expected)
    assert layer.vertical.weight.shape[2:] == (3, 1) and layer.horizontal.weight.shape[2:] == (1, 3)


def test_conv_norm_act_order_and_bias_rule() -> None:
    block = ConvNormAct(3, 8, 3)
    assert [name for name, _ in block.named_children()] == ["conv", "norm", "act"]
    assert block.conv.bias is None  # a bias before BatchNorm is cancelled by its mean
    assert ConvNormAct(3, 8, 3, norm_layer=None).conv.bias is not None
    bare = ConvNormAct(3, 8, 3, norm_layer=None, act_layer=None)
    x = torch.randn(1, 3, 6, 6)
    torch.testing.assert_close(bare(x), F.conv2d(x, bare.conv.weight, bare.conv.bias, padding=1))
    block.eval()
    expected = F.relu(F.batch_norm(F.conv2d(x, block.conv.weight, None, padding=1),
                                   block.norm.running_mean, block.norm.running_var,
                                   block.norm.weight, block.norm.bias))
    torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("stride, kernel", [(2, 4), (2, 3), (3, 3), (1, 3), (2, 2), (4, 2)])
def test_transposed_same_gives_stride_times_input(stride: int, kernel: int) -> None:
    layer = conv_transpose(4, 2, kernel, stride=stride, padding="same")
    x = torch.randn(1, 4, 5, 7)
    out = layer(x)
    assert out.shape[2:] == (5 * stride, 7 * stride)
    expected = F.conv_transpose2d(x, layer.weight, layer.bias, stride=stride,
                                  padding=layer.padding, output_padding=layer.output_padding)
    torch.testing.assert_close(out, expected)


def test_transposed_same_refuses_even_kernel_at_stride_one() -> None:
    # s(i-1) + k - 2p + op = i at s=1, k=2 needs 2p - op = 1, i.e. op = 1, which PyTorch forbids.
    with pytest.raises(CnnlabError, match="use an odd kernel"):
        conv_transpose(1, 1, 2, stride=1, padding="same")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(padding="sideways"), "unknown padding policy"),
        (dict(padding_mode="mirror"), "unknown padding mode"),
        (dict(groups=3), "must be >= 1 and divide"),
        (dict(dims=4), "dims must be 1, 2 or 3"),
        (dict(padding=[1, 2, 3]), "needs 2 entries"),
        (dict(groups=0), "groups 0 must be >= 1"),
        (dict(stride=0), "stride must be >= 1"),
    ],
)
def test_factory_rejects_bad_configuration(kwargs: dict, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        conv(4, 8, 3, **kwargs)


def test_one_dimensional_pair_is_before_after() -> None:
    layer = conv(1, 1, 3, padding=(0, 2), dims=1)
    x = torch.randn(1, 1, 9)
    torch.testing.assert_close(layer(x), F.conv1d(F.pad(x, [0, 2]), layer.weight, layer.bias))


def test_conv_norm_act_default_norm_follows_dims() -> None:
    block = ConvNormAct(2, 4, 3, dims=1)
    assert isinstance(block.norm, nn.BatchNorm1d)
    assert block(torch.randn(2, 2, 9)).shape == (2, 4, 9)


def test_group_norm_picks_a_dividing_group_count() -> None:
    from cnnlab.nn import create_norm

    assert create_norm("group")(48).num_groups == 24
    assert create_norm("group")(64).num_groups == 32
