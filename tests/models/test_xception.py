"""Xception: the parameter count of the Keras layout, checked flow by flow, and its shapes."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.inspect import summary
from cnnlab.models.registry import model_info
from cnnlab.models.xception import SeparableConvNorm, xception
from tests.models.helpers import check_contract


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _sep(c_in: int, c_out: int) -> int:
    """Separable conv + BN: 3x3 depth-wise 9 C_in, 1x1 point-wise C_in C_out, BN 2 C_out."""
    return 9 * c_in + c_in * c_out + 2 * c_out


def _shortcut(c_in: int, c_out: int) -> int:
    """1x1 stride-2 conv without bias + BN."""
    return c_in * c_out + 2 * c_out


# Hand count per flow (Fig. 5), the convs bias-free, each followed by BN (2 params per channel).
STEM = (3 * 9 * 32 + 2 * 32) + (32 * 9 * 64 + 2 * 64)  # 19,488
ENTRY = (
    _sep(64, 128) + _sep(128, 128) + _shortcut(64, 128)  # 35,264
    + _sep(128, 256) + _sep(256, 256) + _shortcut(128, 256)  # 136,064
    + _sep(256, 728) + _sep(728, 728) + _shortcut(256, 728)  # 915,944
)
MIDDLE = 8 * 3 * _sep(728, 728)  # 12,911,808
EXIT = (
    _sep(728, 728) + _sep(728, 1024) + _shortcut(728, 1024)  # 2,039,584
    + _sep(1024, 1536) + _sep(1536, 2048)  # 1,585,152 + 3,163,648
)
FC = 2048 * 1000 + 1000


def test_param_count_flow_by_flow() -> None:
    with torch.device("meta"):
        model = xception()
    assert (STEM, ENTRY, MIDDLE, EXIT) == (19_488, 1_087_272, 12_911_808, 6_788_384)
    assert _count(model.stem) == STEM
    assert _count(model.entry_flow) == ENTRY
    assert _count(model.middle_flow) == MIDDLE
    assert _count(model.exit_flow) == EXIT
    assert _count(model.fc) == FC
    # The DESIGN table (timm legacy_xception) and the paper's Table 3 both give 22,855,952.
    assert _count(model) == STEM + ENTRY + MIDDLE + EXIT + FC == 22_855_952


def test_separable_conv_has_no_bias_and_nothing_between_its_convs() -> None:
    layer = SeparableConvNorm(8, 16)
    assert [type(m) for m in layer] == [nn.Conv2d, nn.Conv2d, nn.BatchNorm2d]
    assert layer.depthwise.groups == 8 and layer.depthwise.bias is None
    assert layer.pointwise.kernel_size == (1, 1) and layer.pointwise.bias is None


def test_shapes_at_299() -> None:
    with torch.device("meta"):
        model = xception()
        x = torch.zeros(1, 3, 299, 299)
        x = model.stem(x)
        assert x.shape == (1, 64, 147, 147)
        sides = []
        for block in model.entry_flow:
            x = block(x)
            sides.append(x.shape[-1])
        assert sides == [74, 37, 19] and x.shape[1] == 728
        x = model.middle_flow(x)
        assert x.shape == (1, 728, 19, 19)
        x = model.exit_flow(x)
        assert x.shape == (1, 2048, 10, 10)
        assert model.forward_head(x).shape == (1, 1000)


def test_macs_equal_flop_counter() -> None:
    ours = summary(xception(), (3, 299, 299))
    with torch.device("meta"):
        model = xception().eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 299, 299, device="meta"))
    assert 2 * ours.total_macs == counter.get_total_flops()
    assert round(ours.total_macs / 1e9, 2) == 8.36  # timm lists 8.4 GMACs at 299


@pytest.mark.parametrize("side", [model_info("xception").min_train_size, 71])
def test_forward_backward_and_contract(side: int) -> None:
    torch.manual_seed(0)
    model = xception(num_classes=5)
    x = torch.randn(2, 3, side, side)
    before = x.clone()
    features = check_contract(model, x, 5)
    torch.testing.assert_close(x, before)  # no ReLU acted in place on the input
    assert features.shape[1] == model.num_features == 2048
    assert len(model.feature_layers()) == 5


def test_min_size_is_the_smallest_that_runs() -> None:
    info = model_info("xception")
    assert info.min_train_size == info.min_eval_size == 7
    assert info.input_size == (3, 299, 299)
    model = xception(num_classes=3).eval()
    with torch.no_grad(), pytest.raises(RuntimeError):
        model(torch.randn(1, 3, 6, 6))  # the unpadded second stem conv has a 2x2 map to read


def test_shortcut_reads_the_input_before_the_first_relu() -> None:
    block = xception().middle_flow[0].eval()
    x = torch.randn(1, 728, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(block(x), block.residual(x) + x)
        assert isinstance(block.residual[0], nn.ReLU) and not block.residual[0].inplace
