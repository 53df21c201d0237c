"""MobileNet v1/v2/v3: counts against the papers, timm and torchvision, logits against torchvision."""

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.inspect import summary
from cnnlab.models.mobilenet import (
    InvertedResidual,
    make_divisible,
    mobilenet_v1,
    mobilenet_v1_050,
    mobilenet_v2,
    mobilenet_v3_large,
    mobilenet_v3_small,
)
from cnnlab.nn import SqueezeExcitation
from tests.models.helpers import assert_equivalent, check_contract, stage_outputs

TORCHVISION = {b.__name__: b for b in (mobilenet_v2, mobilenet_v3_large, mobilenet_v3_small)}
ALL = {b.__name__: b for b in (mobilenet_v1, mobilenet_v1_050, *TORCHVISION.values())}
# DESIGN table: torchvision 0.29 parameter counts and "GFLOPS" (MACs) at 224.
DESIGN = {
    "mobilenet_v2": (3_504_872, 0.301),
    "mobilenet_v3_small": (2_542_856, 0.057),
    "mobilenet_v3_large": (5_483_032, 0.217),
}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _separable(c_in: int, c_out: int) -> int:
    """Depth-wise 3x3 (9 C_in) + BN, point-wise 1x1 (C_in C_out) + BN, no biases."""
    return 9 * c_in + 2 * c_in + c_in * c_out + 2 * c_out


def test_v1_hand_count_equals_timm() -> None:
    # Table 1: 3x3 stem to 32 channels, then 13 separable convs, pool, FC 1024 -> 1000.
    widths = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    hand = 3 * 9 * 32 + 2 * 32
    hand += sum(_separable(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
    hand += 1024 * 1000 + 1000
    with torch.device("meta"):
        model = mobilenet_v1()
    # timm mobilenetv1_100 in the DESIGN table.
    assert _count(model) == hand == 4_231_976


@pytest.mark.parametrize(
    ("width", "params_m", "macs_m"), [(1.0, 4.2, 569), (0.75, 2.6, 325), (0.5, 1.3, 149), (0.25, 0.5, 41)]
)
def test_v1_width_multiplier_matches_paper_table_6(width: float, params_m: float, macs_m: int) -> None:
    # Table 6 (224 px): million parameters to 1 decimal and million mult-adds, rounded.
    result = summary(mobilenet_v1(width_mult=width), (3, 224, 224))
    assert round(result.total_params / 1e6, 1) == params_m
    assert round(result.total_macs / 1e6) == macs_m


def test_v1_050_is_width_half() -> None:
    with torch.device("meta"):
        assert _count(mobilenet_v1_050()) == _count(mobilenet_v1(width_mult=0.5)) == 1_331_592


@pytest.mark.parametrize("name", TORCHVISION)
def test_params_equal_torchvision_and_design(name: str) -> None:
    with torch.device("meta"):
        ours = TORCHVISION[name]()
        theirs = getattr(torchvision.models, name)()
    assert _count(ours) == _count(theirs) == DESIGN[name][0]
    assert len(ours.state_dict()) == len(theirs.state_dict())


@pytest.mark.parametrize("name", TORCHVISION)
def test_macs_equal_flop_counter(name: str) -> None:
    ours = summary(TORCHVISION[name](), (3, 224, 224))
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)().eval()
    with FlopCounterMode(display=False) as counter:
        theirs(torch.zeros(1, 3, 224, 224, device="meta"))
    assert 2 * ours.total_macs == counter.get_total_flops()
    assert round(ours.total_macs / 1e9, 3) == DESIGN[name][1]


@pytest.mark.parametrize("name", TORCHVISION)
def test_logits_equal_torchvision(name: str) -> None:
    assert_equivalent(TORCHVISION[name](), getattr(torchvision.models, name)(), (3, 64, 64))


def test_v3_batch_norm_settings_as_torchvision() -> None:
    norms = [m for m in mobilenet_v3_small().modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(m.eps == 1e-3 and m.momentum == 0.01 for m in norms)
    assert all(m.eps == 1e-5 for m in mobilenet_v2().modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_and_contract(name: str) -> None:
    torch.manual_seed(0)
    model = ALL[name](num_classes=5)
    features = check_contract(model, torch.randn(2, 3, 32, 32), 5)
    assert features.shape == (2, model.num_features, 1, 1)
    assert len(model.feature_layers()) == 5
    assert isinstance(model.get_classifier(), nn.Linear)


@pytest.mark.parametrize("name", ALL)
def test_stages_halve_the_map(name: str) -> None:
    model = ALL[name](in_chans=1).eval()
    with torch.no_grad():
        _, maps = stage_outputs(model, torch.randn(1, 1, 64, 64))
    shapes = [m.shape for m in maps.values()]
    assert [s[-1] for s in shapes] == [32, 16, 8, 4, 2]
    assert shapes[-1][1] == model.num_features


def test_make_divisible_rule() -> None:
    assert make_divisible(32 * 0.75) == 24
    assert make_divisible(3) == 8  # never below the divisor
    assert make_divisible(12) == 16  # halves round up
    assert make_divisible(1280 * 1.1) == 1408
    assert make_divisible(20, 16) == 32  # 16 would lose more than 10% of 20


def test_v2_linear_bottleneck_and_shortcut() -> None:
    # Sec. 3.2: no activation after the projection; Sec. 3.3: shortcut between bottlenecks.
    block = InvertedResidual(24, 24, 144, stride=1)
    expand, depthwise, project = block.block
    assert isinstance(expand.act, nn.ReLU6) and depthwise.conv.groups == 144
    assert not hasattr(project, "act") and block.use_residual
    assert not InvertedResidual(24, 32, 144, stride=1).use_residual
    assert not InvertedResidual(24, 24, 144, stride=2).use_residual
    first = mobilenet_v2().features[1]  # t = 1: no expansion conv
    assert len(first.block) == 2


def test_v3_squeeze_excitation_hard_sigmoid_and_width() -> None:
    model = mobilenet_v3_large()
    se_blocks = [m for m in model.modules() if isinstance(m, SqueezeExcitation)]
    assert len(se_blocks) == 8  # Table 1: 8 of the 15 bnecks carry SE
    assert all(isinstance(se.gate, nn.Hardsigmoid) for se in se_blocks)
    # Squeeze to a quarter of the expanded width, rounded to a multiple of 8: 72 -> 24, 120 -> 32.
    assert [se.fc1.out_channels for se in se_blocks[:3]] == [24, 32, 32]
    assert sum(isinstance(m, nn.Hardswish) for m in model.modules()) > 0
