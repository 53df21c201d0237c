"""EfficientNet B0..B7 against torchvision, and the compound-scaling rule against the published table."""

import math

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.inspect import summary
from cnnlab.models import efficientnet as module
from cnnlab.models.efficientnet import B_CONFIGS, compound_scaling, efficientnet, efficientnet_b0
from cnnlab.models.registry import model_info
from cnnlab.nn import DropPath, SqueezeExcitation
from tests.models.helpers import assert_equivalent, check_contract

NAMES = list(B_CONFIGS)
# (width, depth, resolution, dropout) of the paper's reference code, as torchvision uses them.
PUBLISHED = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4),
    "efficientnet_b5": (1.6, 2.2, 456, 0.4),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5),
    "efficientnet_b7": (2.0, 3.1, 600, 0.5),
}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _build(name: str, **kwargs: object) -> nn.Module:
    return getattr(module, name)(**kwargs)


def test_configs_are_the_published_coefficients() -> None:
    for name, (width, depth, resolution, dropout) in PUBLISHED.items():
        config = B_CONFIGS[name]
        assert (config.width_mult, config.depth_mult, config.resolution, config.dropout) == (width, depth, resolution, dropout)
        side = 288 if name == "efficientnet_b2" else resolution  # torchvision's B2 weights: 288
        assert model_info(name).input_size == (3, side, side)


@pytest.mark.parametrize("name", NAMES)
def test_params_equal_torchvision(name: str) -> None:
    with torch.device("meta"):
        ours = _build(name)
        theirs = getattr(torchvision.models, name)()
    assert _count(ours) == _count(theirs)
    assert len(ours.state_dict()) == len(theirs.state_dict())
    # BatchNorm: PyTorch's defaults for B0..B4, TensorFlow's (eps 1e-3, decay 0.99) for B5..B7.
    ours_bn = {(m.eps, m.momentum) for m in ours.modules() if isinstance(m, nn.BatchNorm2d)}
    theirs_bn = {(m.eps, m.momentum) for m in theirs.modules() if isinstance(m, nn.BatchNorm2d)}
    assert ours_bn == theirs_bn == ({(1e-3, 0.01)} if name[-1] in "567" else {(1e-5, 0.1)})


def test_b0_matches_design_table_and_macs() -> None:
    with torch.device("meta"):
        assert _count(efficientnet_b0()) == 5_288_548
    ours = summary(efficientnet_b0(), (3, 224, 224))
    with torch.device("meta"):
        theirs = torchvision.models.efficientnet_b0().eval()
    with FlopCounterMode(display=False) as counter:
        theirs(torch.zeros(1, 3, 224, 224, device="meta"))
    assert 2 * ours.total_macs == counter.get_total_flops()
    assert round(ours.total_macs / 1e9, 3) == 0.386


@pytest.mark.parametrize(("name", "size"), [("efficientnet_b0", 64), ("efficientnet_b5", 32)])
def test_logits_equal_torchvision(name: str, size: int) -> None:
    # B5 checks the eps-1e-3 BatchNorm and the widened, deepened stages.
    assert_equivalent(_build(name), getattr(torchvision.models, name)(), (3, size, size))


def test_depth_and_width_rounding() -> None:
    # Depth: ceil(repeats * d); width: channels * w to a multiple of 8 (make_divisible).
    model = _build("efficientnet_b7")
    assert [len(model.features[i]) for i in range(1, 8)] == [math.ceil(r * 3.1) for r in (1, 2, 2, 3, 3, 4, 1)]
    assert [model.features[i][-1].block[-1].conv.out_channels for i in range(1, 8)] == [32, 48, 80, 160, 224, 384, 640]
    assert model.features[0].conv.out_channels == 64 and model.num_features == 2560


def test_squeeze_excitation_reduces_the_block_input() -> None:
    model = efficientnet_b0()
    block = model.features[2][0]  # 16 -> 24 channels, expanded 6x to 96
    se = next(m for m in block.modules() if isinstance(m, SqueezeExcitation))
    assert (se.fc1.in_channels, se.fc1.out_channels) == (96, 4)  # 16 / 4, not 96 / 4
    assert isinstance(se.act, nn.SiLU) and isinstance(se.gate, nn.Sigmoid)


def test_stochastic_depth_grows_linearly() -> None:
    rates = [m.p for m in efficientnet_b0().modules() if isinstance(m, DropPath)]
    assert rates == pytest.approx([0.2 * i / 16 for i in range(16)])
    assert all(m.p == 0.0 for m in efficientnet_b0(stochastic_depth_prob=0.0).modules() if isinstance(m, DropPath))


def test_phi_zero_is_b0() -> None:
    scaled = efficientnet(0)
    assert compound_scaling(0).resolution == 224
    b0 = efficientnet_b0()
    assert _count(scaled) == _count(b0) == 5_288_548
    assert [type(m) for m in scaled.modules()] == [type(m) for m in b0.modules()]
    assert scaled.load_state_dict(b0.state_dict()) is not None
    b0.eval()
    scaled.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(scaled(x), b0(x), rtol=0, atol=0)


def test_published_variants_are_not_one_phi() -> None:
    # Each coefficient implies its own phi: log(d) / log(1.2) and log(w) / log(1.1).
    def implied(name: str) -> tuple[float, float]:
        width, depth, _, _ = PUBLISHED[name]
        return math.log(depth) / math.log(1.2), math.log(width) / math.log(1.1)

    phi_depth, phi_width = implied("efficientnet_b1")
    assert phi_depth == pytest.approx(0.523, abs=1e-3) and phi_width == 0.0  # B1 is "phi about 0.5"
    assert 1.1**0.5 == pytest.approx(1.049, abs=1e-3)  # the width phi = 0.5 asks for, B1 keeps 1.0
    # B2 is phi = 1 in width and depth (resolution 260 versus 224 * 1.15 = 257.6) ...
    assert implied("efficientnet_b2") == pytest.approx((1.0, 1.0))
    assert efficientnet(1).config.resolution == 256
    with torch.device("meta"):
        assert _count(efficientnet(1)) == _count(_build("efficientnet_b2"))
    # ... while B3..B7 widen faster than their depth's phi: no single phi gives both.
    gaps = [implied(n)[1] - implied(n)[0] for n in NAMES[3:]]
    assert all(gap > 0.05 for gap in gaps) and gaps == sorted(gaps)


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_and_contract(name: str) -> None:
    torch.manual_seed(0)
    model = _build(name, num_classes=5)
    features = check_contract(model, torch.randn(2, 3, 32, 32), 5)
    assert features.shape == (2, model.num_features, 1, 1)
    assert len(model.feature_layers()) == 8
