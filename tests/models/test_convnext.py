"""ConvNeXt against torchvision (counts, MACs, logits) and against the paper's block arithmetic."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.inspect import summary
from cnnlab.models.convnext import (
    ConvNeXtBlock,
    LayerNorm2d,
    convnext_base,
    convnext_small,
    convnext_tiny,
)
from cnnlab.nn import DropPath
from tests.models.helpers import assert_equivalent, check_contract, stage_outputs

BUILDERS = {b.__name__: b for b in (convnext_tiny, convnext_small, convnext_base)}
# (depths, widths) of the paper's Sec. 3 variants
PLANS = {
    "convnext_tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "convnext_small": ((3, 3, 27, 3), (96, 192, 384, 768)),
    "convnext_base": ((3, 3, 27, 3), (128, 256, 512, 1024)),
}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _hand_count(depths: tuple[int, ...], widths: tuple[int, ...], classes: int = 1000) -> int:
    stem = 3 * 4 * 4 * widths[0] + widths[0] + 2 * widths[0]  # 4x4 conv with bias, LayerNorm
    # Block: 7x7 depth-wise (49C + C), LayerNorm 2C, Linear C->4C (4C^2 + 4C),
    # Linear 4C->C (4C^2 + C), layer scale C: 8C^2 + 58C.
    blocks = sum(d * (8 * c * c + 58 * c) for d, c in zip(depths, widths, strict=True))
    # Down-sampling: LayerNorm 2C_in, 2x2 conv 4 C_in C_out + C_out.
    down = sum(2 * a + 4 * a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
    head = 2 * widths[-1] + widths[-1] * classes + classes
    return stem + blocks + down + head


@pytest.mark.parametrize("name", BUILDERS)
def test_params_equal_torchvision_and_hand_count(name: str) -> None:
    with torch.device("meta"):
        ours = BUILDERS[name]()
        theirs = getattr(torchvision.models, name)()
    assert _count(ours) == _count(theirs) == _hand_count(*PLANS[name])
    assert len(ours.state_dict()) == len(theirs.state_dict())


def test_tiny_matches_design_table() -> None:
    with torch.device("meta"):
        assert _count(convnext_tiny()) == 28_589_128


@pytest.mark.parametrize("name", BUILDERS)
def test_macs_equal_flop_counter(name: str) -> None:
    ours = summary(BUILDERS[name](), (3, 224, 224))
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)().eval()
    with FlopCounterMode(display=False) as counter:
        theirs(torch.zeros(1, 3, 224, 224, device="meta"))
    assert 2 * ours.total_macs == counter.get_total_flops()
    if name == "convnext_tiny":
        assert round(ours.total_macs / 1e9, 3) == 4.456


@pytest.mark.parametrize("name", BUILDERS)
def test_logits_equal_torchvision(name: str) -> None:
    assert_equivalent(BUILDERS[name](), getattr(torchvision.models, name)(), (3, 64, 64))


@pytest.mark.parametrize("name", BUILDERS)
def test_forward_backward_and_contract(name: str) -> None:
    torch.manual_seed(0)
    model = BUILDERS[name](num_classes=5)
    x = torch.randn(2, 3, 32, 32)  # the smallest side: 32 / 4 / 2 / 2 / 2 = 1
    features = check_contract(model, x, 5)
    assert features.shape == (2, model.num_features, 1, 1)
    assert len(model.feature_layers()) == 4


def test_stage_maps_halve_and_widths_double() -> None:
    model = convnext_tiny().eval()
    with torch.no_grad():
        _, maps = stage_outputs(model, torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape[1:]) for m in maps.values()] == [(96, 16, 16), (192, 8, 8), (384, 4, 4), (768, 2, 2)]


def test_stochastic_depth_is_linear_in_depth_and_overridable() -> None:
    rates = [m.p for m in convnext_tiny().modules() if isinstance(m, DropPath)]
    assert len(rates) == 18
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1)
    assert rates == pytest.approx([0.1 * i / 17 for i in range(18)])
    assert max(m.p for m in convnext_base().modules() if isinstance(m, DropPath)) == pytest.approx(0.5)
    assert all(m.p == 0.0 for m in convnext_tiny(stochastic_depth_prob=0.0).modules() if isinstance(m, DropPath))
    with pytest.raises(TypeError):
        convnext_tiny(colour="blue")


def test_block_starts_near_identity() -> None:
    # Layer scale 1e-6 (Touvron et al. 2021): the residual branch barely moves x at init.
    block = ConvNeXtBlock(16, drop_prob=0.0, layer_scale_init=1e-6).eval()
    assert block.layer_scale.shape == (16, 1, 1)
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(block(x), x, atol=1e-4, rtol=0)


def test_layer_norm_2d_normalises_channels_per_pixel() -> None:
    norm = LayerNorm2d(8, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.normal_()
    x = torch.randn(2, 8, 5, 5) * 3 + 1
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-6) * norm.weight[:, None, None] + norm.bias[:, None, None]
    torch.testing.assert_close(norm(x), expected, rtol=1e-5, atol=1e-5)
    # GroupNorm(1, C) normalises over C, H and W together: not the same function.
    assert not torch.allclose(F.group_norm(x, 1, norm.weight, norm.bias, eps=1e-6), norm(x), atol=1e-3)
