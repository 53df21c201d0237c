"""ResNet family: torchvision equivalence, timm's SE-ResNet-50 count, ResNeXt widths."""

import pytest
import torch
import torchvision

from cnnlab.models import create_model
from tests.models.helpers import assert_equivalent


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d", "wide_resnet50_2"])
def test_logits_equal_torchvision(name: str) -> None:
    assert_equivalent(create_model(name), getattr(torchvision.models, name)(), (3, 64, 64))


def test_se_resnet50_count_by_hand_and_timm() -> None:
    # SE adds 2 C^2/16 + C/16 + C per bottleneck, C = 256, 512, 1024, 2048 over 3, 4, 6, 3 blocks.
    extra = sum(n * (2 * c * c // 16 + c // 16 + c) for c, n in ((256, 3), (512, 4), (1024, 6), (2048, 3)))
    with torch.device("meta"):
        model = create_model("se_resnet50")
    assert sum(p.numel() for p in model.parameters()) == 25_557_032 + extra == 28_088_024
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        reference = timm.create_model("seresnet50")
    assert sum(p.numel() for p in reference.parameters()) == 28_088_024


def test_resnext_grouped_width() -> None:
    model = create_model("resnext50_32x4d")
    first = model.layer1[0].conv2.conv
    assert first.groups == 32 and first.in_channels == 128  # 32 groups x width 4 at planes 64


def test_zero_init_residual_starts_blocks_as_identity() -> None:
    model = create_model("resnet18", zero_init_residual=True)
    assert all(block.conv2.norm.weight.abs().sum() == 0 for block in model.layer1)


def test_norm_and_act_layers_reach_every_block() -> None:
    from functools import partial

    from torch import nn

    from cnnlab.models import create_model

    group_norm = partial(nn.GroupNorm, 8)
    for name, norms in (("resnet18", 20), ("resnet50", 53), ("resnet20", 19)):
        model = create_model(name, norm_layer=group_norm, act_layer=nn.SiLU)
        kinds = [type(m) for m in model.modules()]
        assert nn.BatchNorm2d not in kinds and nn.ReLU not in kinds, name
        assert kinds.count(nn.GroupNorm) == norms, name  # as many as the BatchNorms they replace
        assert kinds.count(nn.SiLU) > 0
        baseline = [type(m) for m in create_model(name).modules()]
        assert baseline.count(nn.BatchNorm2d) == norms
