"""Blocks built from explicit arguments, and a ResNet that builds whichever block class it is given."""

from functools import partial

import pytest
import torch
from torch import nn

from cnnlab.models.resnet import ResNet, ResNetConfig, resnet18, resnet50
from cnnlab.nn import BasicBlock, Bottleneck, ConvNormAct, DenseBlock, DenseLayer


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _se(channels: int, reduction: int) -> int:
    # two 1x1 convs with biases: C -> C/r -> C
    reduced = channels // reduction
    return channels * reduced + reduced + reduced * channels + channels


def test_basic_block_from_explicit_arguments() -> None:
    group_norm = partial(nn.GroupNorm, 8)
    projection = ConvNormAct(32, 64, 1, stride=2, padding=0, norm_layer=group_norm, act_layer=None)
    block = BasicBlock(32, 64, stride=2, downsample=projection, se_reduction=4, norm_layer=group_norm, act_layer=nn.SiLU)
    # bias-free 3x3 32->64 and 64->64, each with a GroupNorm (weight + bias), SE, then the 1x1 projection
    expected = 32 * 64 * 9 + 2 * 64 + 64 * 64 * 9 + 2 * 64 + _se(64, 4) + 32 * 64 + 2 * 64
    assert _count(block) == expected
    assert block(torch.randn(2, 32, 8, 8)).shape == (2, 64, 4, 4)
    assert isinstance(block.act, nn.SiLU) and isinstance(block.conv1.norm, nn.GroupNorm)


def test_basic_block_refuses_bottleneck_only_arguments() -> None:
    with pytest.raises(ValueError, match="groups"):
        BasicBlock(64, 64, groups=32, width_per_group=4)


def test_grouped_bottleneck_from_explicit_arguments() -> None:
    block = Bottleneck(256, 128, stride=2, downsample=ConvNormAct(256, 512, 1, stride=2, padding=0, act_layer=None),
                       groups=32, width_per_group=8, se_reduction=16)
    width = int(128 * 8 / 64) * 32  # 512: planes * width_per_group / 64 * groups
    expected = (256 * width + 2 * width  # 1x1 reduce + BN
                + width * (width // 32) * 9 + 2 * width  # grouped 3x3 + BN
                + width * 512 + 2 * 512  # 1x1 expand to planes * 4 + BN
                + _se(512, 16)
                + 256 * 512 + 2 * 512)  # projection shortcut + BN
    assert _count(block) == expected
    assert block.conv2.conv.groups == 32
    assert block(torch.randn(2, 256, 8, 8)).shape == (2, 512, 4, 4)


def test_dense_block_from_explicit_arguments() -> None:
    # BN(C), 1x1 C -> 2k, BN(2k), 3x3 2k -> k with C = 16, k = 8, bottleneck factor 2
    assert _count(DenseLayer(16, growth_rate=8, bottleneck_factor=2)) == 2 * 16 + 16 * 16 + 2 * 16 + 16 * 8 * 9
    block = DenseBlock(3, 16, growth_rate=8, bottleneck_factor=2, drop_rate=0.1)
    assert block.out_channels == 16 + 3 * 8
    assert all(isinstance(layer.dropout, nn.Dropout) for layer in block.layers)
    assert block.eval()(torch.randn(2, 16, 5, 5)).shape == (2, 40, 5, 5)


class _RecordingBlock(BasicBlock):
    """A BasicBlock that remembers the keywords the network built it with."""

    seen: list[dict[str, object]] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        type(self).seen.append(kwargs)
        super().__init__(*args, **kwargs)


def test_resnet_builds_the_block_class_it_is_given() -> None:
    _RecordingBlock.seen.clear()
    model = ResNet(ResNetConfig(_RecordingBlock, (1, 2, 1, 1), se_reduction=8, act_layer=nn.SiLU), num_classes=3)
    blocks = [block for stage in (model.layer1, model.layer2, model.layer3, model.layer4) for block in stage]
    assert len(blocks) == len(_RecordingBlock.seen) == 5
    assert all(isinstance(block, _RecordingBlock) for block in blocks)
    assert {key for kwargs in _RecordingBlock.seen for key in kwargs} == {
        "stride", "downsample", "groups", "width_per_group", "se_reduction", "norm_layer", "act_layer"}
    assert [kwargs["stride"] for kwargs in _RecordingBlock.seen] == [1, 2, 1, 2, 2]
    assert all(kwargs["se_reduction"] == 8 and kwargs["act_layer"] is nn.SiLU for kwargs in _RecordingBlock.seen)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)


def test_builders_pass_their_block_class() -> None:
    with torch.device("meta"):
        basic, bottleneck = resnet18(), resnet50()
    assert all(type(block) is BasicBlock for block in basic.layer3)
    assert all(type(block) is Bottleneck for block in bottleneck.layer3)
    assert bottleneck.num_features == 512 * Bottleneck.expansion
