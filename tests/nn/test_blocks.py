"""The zoo's blocks in cnnlab.nn, checked against hand-computed shapes and parameter counts."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.nn import (
    BasicBlock,
    BasicConv2d,
    Bottleneck,
    CifarBasicBlock,
    ConvNeXtBlock,
    DenseBlock,
    DenseLayer,
    HighwayLayer,
    InceptionSpec,
    InvertedResidual,
    LayerNorm2d,
    PreActBlock,
    SeparableConvNorm,
    Shortcut,
    Transition,
    XceptionBlock,
    ZeroPadShortcut,
    inception_v1_module,
    make_divisible,
)
from cnnlab.nn.inception import inception_a, inception_c, inception_e, reduction_a, reduction_b


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- residual


def test_basic_block_parameter_count() -> None:
    # two bias-free 3x3 convs 64 -> 64, each followed by BN (weight + bias)
    block = BasicBlock(64, 64, stride=1)
    assert _count(block) == 2 * (64 * 64 * 9) + 2 * (2 * 64)
    assert block(torch.randn(2, 64, 8, 8)).shape == (2, 64, 8, 8)


def test_bottleneck_parameter_count_and_resnext_width() -> None:
    # 1x1 256->64, 3x3 64->64, 1x1 64->256, BNs of 64, 64, 256: torchvision's layer1 block
    block = Bottleneck(256, 64, stride=1)
    assert _count(block) == 256 * 64 + 64 * 64 * 9 + 64 * 256 + 2 * (64 + 64 + 256)
    # ResNeXt 32x4d: width = 64 * 4 / 64 * 32 = 128, the 3x3 grouped in 32 -> 128 * 4 * 9 weights
    resnext = Bottleneck(256, 64, stride=1, groups=32, width_per_group=4)
    assert resnext.conv2.conv.weight.shape == (128, 4, 3, 3)


def test_zero_pad_shortcut_subsamples_and_appends_zeros() -> None:
    x = torch.randn(2, 16, 8, 8)
    out = ZeroPadShortcut(16, 32, 2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.all(out[:, 16:] == 0)


def test_cifar_basic_block_option_a_has_no_shortcut_parameters() -> None:
    block_a = CifarBasicBlock(16, 32, 2, Shortcut.A)
    assert _count(block_a) == 16 * 32 * 9 + 32 * 32 * 9 + 2 * (2 * 32)
    assert block_a(torch.randn(2, 16, 8, 8)).shape == (2, 32, 4, 4)
    # option B adds a bias-free 1x1 projection and its BN
    assert _count(CifarBasicBlock(16, 32, 2, Shortcut.B)) - _count(block_a) == 16 * 32 + 2 * 32


def test_preact_bottleneck_parameter_count() -> None:
    # BN(64); 1x1 64->16, BN(16); 3x3 16->16, BN(16); 1x1 16->64; no projection (same shape)
    block = PreActBlock(64, 64, 1, bottleneck=True)
    assert block.shortcut is None
    assert _count(block) == 2 * 64 + 64 * 16 + 2 * 16 + 16 * 16 * 9 + 2 * 16 + 16 * 64
    assert block(torch.randn(2, 64, 8, 8)).shape == (2, 64, 8, 8)


# ---------------------------------------------------------------- dense


def test_dense_layer_parameter_count() -> None:
    # BN(C), 1x1 C->4k, BN(4k), 3x3 4k->k, with C = 64, k = 32
    assert _count(DenseLayer(64, growth_rate=32)) == 2 * 64 + 64 * 128 + 2 * 128 + 128 * 32 * 9


def test_dense_block_adds_k_channels_per_layer_and_transition_halves_the_grid() -> None:
    block = DenseBlock(6, 64, growth_rate=32)
    assert block.out_channels == 64 + 6 * 32
    out = block(torch.randn(2, 64, 8, 8))
    assert out.shape == (2, 256, 8, 8)
    assert Transition(256, 128)(out).shape == (2, 128, 4, 4)


# ---------------------------------------------------------------- inception


def test_basic_conv2d_parameters_and_tf_slim_eps() -> None:
    layer = BasicConv2d(3, 32, 3)
    assert _count(layer) == 3 * 32 * 9 + 2 * 32  # no conv bias
    assert layer.norm.eps == pytest.approx(1e-3)


def test_inception_v1_module_3a_outputs_table_1_channels() -> None:
    spec = InceptionSpec(192, 64, 96, 128, 16, 32, 32)
    assert spec.out_channels == 256  # 64 + 128 + 32 + 32 (GoogLeNet Table 1, inception 3a)
    assert inception_v1_module(spec)(torch.randn(1, 192, 28, 28)).shape == (1, 256, 28, 28)


@pytest.mark.parametrize(
    ("module", "in_shape", "out_shape"),
    [
        (lambda: inception_a(192, 32), (192, 35, 35), (64 + 64 + 96 + 32, 35, 35)),
        (lambda: reduction_a(288), (288, 35, 35), (384 + 96 + 288, 17, 17)),  # (35 - 3) / 2 + 1 = 17
        (lambda: inception_c(768, 128), (768, 17, 17), (4 * 192, 17, 17)),
        (lambda: reduction_b(768), (768, 17, 17), (320 + 192 + 768, 8, 8)),  # (17 - 3) / 2 + 1 = 8
        (lambda: inception_e(1280), (1280, 8, 8), (320 + 768 + 768 + 192, 8, 8)),
    ],
)
def test_inception_v3_modules_match_the_paper_grid(module, in_shape, out_shape) -> None:
    assert module().eval()(torch.randn(1, *in_shape)).shape == (1, *out_shape)


# ---------------------------------------------------------------- mobile


def test_make_divisible_rounds_to_eight_without_losing_ten_percent() -> None:
    assert make_divisible(32 * 0.75) == 24
    assert make_divisible(3) == 8  # never below the divisor
    assert make_divisible(10) == 16  # 8 would lose 20%, so one more step
    assert make_divisible(36) == 40  # 36 + 4 rounds up to 40


def test_inverted_residual_parameter_count_and_shortcut() -> None:
    # 1x1 24->144, BN; depth-wise 3x3 on 144, BN; linear 1x1 144->24, BN (MobileNet v2, t = 6)
    block = InvertedResidual(24, 24, 144, stride=1)
    assert _count(block) == 24 * 144 + 2 * 144 + 144 * 9 + 2 * 144 + 144 * 24 + 2 * 24
    assert block.use_residual
    assert block(torch.randn(2, 24, 8, 8)).shape == (2, 24, 8, 8)


# ---------------------------------------------------------------- ConvNeXt


def test_layer_norm_2d_normalises_channels_at_each_pixel() -> None:
    x = torch.randn(2, 8, 5, 5)
    expected = F.layer_norm(x.permute(0, 2, 3, 1), (8,)).permute(0, 3, 1, 2)
    torch.testing.assert_close(LayerNorm2d(8)(x), expected)


def test_convnext_block_parameter_count_and_zero_layer_scale_is_identity() -> None:
    d = 96
    block = ConvNeXtBlock(d, 0.0, 0.0)
    # dw 7x7 (49d + d), LN (2d), Linear d->4d (4d^2 + 4d), Linear 4d->d (4d^2 + d), layer scale (d)
    assert _count(block) == 8 * d * d + 49 * d + d + 2 * d + 4 * d + d + d
    x = torch.randn(2, d, 7, 7)
    torch.testing.assert_close(block(x), x)


# ---------------------------------------------------------------- Xception


def test_separable_conv_norm_parameter_count() -> None:
    # depth-wise 3x3 on 8 channels, 1x1 8->16, BN(16); no biases
    assert _count(SeparableConvNorm(8, 16)) == 8 * 9 + 8 * 16 + 2 * 16


def test_xception_block_downsamples_with_projection_shortcut() -> None:
    block = XceptionBlock(64, (128, 128), 2, start_with_relu=False)
    assert block.shortcut is not None
    # max-pool 3, stride 2, pad 1 on 16: (16 + 2 - 3) // 2 + 1 = 8, as the 1x1 stride-2 shortcut
    assert block(torch.randn(2, 64, 16, 16)).shape == (2, 128, 8, 8)


# ---------------------------------------------------------------- highway


def test_highway_layer_with_closed_gate_carries_its_input() -> None:
    layer = HighwayLayer(8, gate_bias=-50.0).eval()  # T = sigmoid(-50 + ...) ~ 0: y = x
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(layer(x), x)
