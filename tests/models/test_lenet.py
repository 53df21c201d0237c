"""LeNet-5: the modern network's 61,706 parameters, and the 1998 paper's layers one by one."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect import summary
from cnnlab.models import create_model, model_info
from cnnlab.models.lenet import (
    DIGIT_BITMAPS,
    EuclideanRBF,
    PartialConv2d,
    ScaledTanh,
    TrainableSubsampling,
    c3_connections,
    digit_centres,
    lenet5,
    lenet5_1998,
    lenet5_bn,
    lenet5_tiny,
)
from cnnlab.nn import PoolMode
from tests.models.helpers import check_contract


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _check_contract(model: nn.Module, num_classes: int) -> None:
    params = list(model.parameters())  # before reset_classifier swaps the head
    check_contract(model, torch.randn(2, 1, 32, 32), num_classes)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


@pytest.mark.parametrize("pool", [PoolMode.MAX, PoolMode.AVG])
@pytest.mark.parametrize("act_layer", [nn.ReLU, nn.Tanh])
def test_modern_lenet5(pool: PoolMode, act_layer: type[nn.Module]) -> None:
    torch.manual_seed(0)
    model = lenet5(pool=pool, act_layer=act_layer)
    assert _params(model) == 61_706  # DESIGN table
    _check_contract(model, 10)


def test_tiny_lenet5_is_the_distillation_student() -> None:
    torch.manual_seed(0)
    model = lenet5_tiny()
    # conv 1*4*25+4 = 104, conv 4*8*25+8 = 808, fc 200*32+32 = 6,432, 32*16+16 = 528, 16*10+10 = 170.
    assert _params(model) == 8_042 <= 10_000
    _check_contract(model, 10)


def test_batchnorm_lenet5_normalises_both_convs() -> None:
    torch.manual_seed(0)
    model = lenet5_bn()
    # The convs lose their biases (6 + 16) to BatchNorm's shift and gain a scale and a shift per
    # channel (2 * (6 + 16)): 61,706 - 22 + 44 = 61,728.
    assert _params(model) == 61_728
    assert [type(m) for m in model.modules() if isinstance(m, nn.BatchNorm2d)] == [nn.BatchNorm2d] * 2
    assert model.conv1.conv.bias is None and model.conv2.conv.bias is None
    _check_contract(model, 10)


def test_registry_entries() -> None:
    for name in ("lenet5", "lenet5_tiny", "lenet5_bn", "lenet5_1998"):
        info = model_info(name)
        assert (info.input_size, info.small_input, info.default_classes, info.year) == ((1, 32, 32), True, 10, 1998)


def test_modern_lenet5_macs() -> None:
    # conv1 6*25*28*28 + conv2 16*6*25*10*10 + FC 400*120 + 120*84 + 84*10 = 416,520: DESIGN's 0.00042 G.
    assert summary(lenet5(), (1, 32, 32)).total_macs == 416_520


def test_1998_parameter_counts_per_layer() -> None:
    model = lenet5_1998()
    # Sec. II-B of the paper, layer by layer.
    expected = {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164, "output": 0}
    assert {name: _params(child) for name, child in model.named_children()} == expected
    assert _params(model) == sum(p.numel() for p in model.parameters()) == 60_000
    assert model.output.centres.shape == (10, 84)  # a buffer, not a parameter
    assert "output.centres" in model.state_dict()


def test_1998_macs_count_only_the_table_connections() -> None:
    rows = {row.name: row.macs for row in summary(lenet5_1998(), (1, 32, 32)).layers}
    # 60 kernels of 5x5 on 10x10 outputs: the paper's 151,600 connections less 1,600 biases.
    assert sum(macs for name, macs in rows.items() if name.startswith("c3.")) == 150_000


def test_c3_connection_table_matches_table_1() -> None:
    table = c3_connections()
    assert table[0] == (0, 1, 2)
    assert table[4] == (0, 4, 5)
    assert table[6] == (0, 1, 2, 3)
    assert table[11] == (0, 1, 2, 5)
    assert table[12] == (0, 1, 3, 4)
    assert table[13] == (1, 2, 4, 5)
    assert table[14] == (0, 2, 3, 5)
    assert table[15] == (0, 1, 2, 3, 4, 5)
    assert [len(inputs) for inputs in table] == [3] * 6 + [4] * 9 + [6]
    assert sum(len(inputs) for inputs in table) == 60
    assert all(sum(i in inputs for inputs in table) == 10 for i in range(6))  # every row has 10 X
    assert lenet5_1998().c3.layer.connections == table


def _dense_weight(layer: PartialConv2d, in_maps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scatter the grouped kernels into a full (out, in, k, k) weight that is zero off the table."""
    kernels = {}
    for conv, group in zip(layer.convs, _groups(layer.connections), strict=True):
        for position, out_map in enumerate(group):
            kernels[out_map] = (conv.weight[position], conv.bias[position])
    k = layer.convs[0].kernel_size[0]
    weight = torch.zeros(len(layer.connections), in_maps, k, k)
    bias = torch.zeros(len(layer.connections))
    for out_map, inputs in enumerate(layer.connections):
        weight[out_map, list(inputs)] = kernels[out_map][0]
        bias[out_map] = kernels[out_map][1]
    return weight, bias


def _groups(connections: tuple[tuple[int, ...], ...]) -> list[list[int]]:
    sizes = sorted({len(c) for c in connections})
    return [[k for k, c in enumerate(connections) if len(c) == n] for n in sizes]


@pytest.mark.parametrize(
    "connections",
    [c3_connections(), ((0, 2), (1,), (0, 1, 2), (2,), (1, 2))],  # the second needs reordering
)
def test_partial_conv_equals_masked_full_conv(connections: tuple[tuple[int, ...], ...]) -> None:
    torch.manual_seed(0)
    in_maps = 1 + max(max(c) for c in connections)
    layer = PartialConv2d(connections, 3)
    x = torch.randn(2, in_maps, 8, 8)
    weight, bias = _dense_weight(layer, in_maps)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), F.conv2d(x, weight, bias))


def test_c3_maps_ignore_unconnected_inputs() -> None:
    torch.manual_seed(0)
    c3 = PartialConv2d(c3_connections(), 5)
    x = torch.randn(1, 6, 14, 14)
    nudged = x.clone()
    nudged[:, 3] += 1.0  # S2 map 3 feeds C3 maps 1, 2, 3 but not 0
    with torch.no_grad():
        diff = (c3(nudged) - c3(x)).abs().amax(dim=(0, 2, 3))
    assert diff[0] == 0 and diff[4] == 0 and diff[5] == 0
    assert (diff[[1, 2, 3, 15]] > 0).all()


def test_scaled_tanh_and_subsampling() -> None:
    f = ScaledTanh()
    torch.testing.assert_close(f(torch.tensor([1.0, -1.0, 0.0])), torch.tensor([1.0, -1.0, 0.0]), atol=1e-4, rtol=0)
    layer = TrainableSubsampling(2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([2.0, -1.0]))
        layer.bias.copy_(torch.tensor([0.5, 0.0]))
    x = torch.arange(32.0).reshape(1, 2, 4, 4)
    expected = x.reshape(1, 2, 2, 2, 2, 2).sum(dim=(3, 5))  # 2x2 window sums
    expected = expected * torch.tensor([2.0, -1.0]).view(1, 2, 1, 1) + torch.tensor([0.5, 0.0]).view(1, 2, 1, 1)
    torch.testing.assert_close(layer(x), expected)


def test_bitmaps_and_rbf_output() -> None:
    assert len(DIGIT_BITMAPS) == 10
    assert all(len(b) == 12 and all(len(row) == 7 and set(row) <= {"#", "."} for row in b) for b in DIGIT_BITMAPS)
    centres = digit_centres()
    assert centres.shape == (10, 84) and set(centres.unique().tolist()) == {-1.0, 1.0}
    assert len({tuple(c.tolist()) for c in centres}) == 10  # all distinct
    assert torch.cdist(centres, centres).add(torch.eye(10) * 100).min() >= 2  # >= 1 pixel apart
    penalties = EuclideanRBF(centres)(centres)  # (10, 10): a bitmap is nearest to itself
    assert torch.equal(penalties.diagonal(), torch.zeros(10))
    assert torch.equal(penalties.argmin(dim=1), torch.arange(10))
    torch.testing.assert_close(penalties, torch.cdist(centres, centres).square())


def test_1998_logits_are_negative_penalties() -> None:
    model = lenet5_1998().eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        f6 = model.f6(model.forward_features(x).flatten(1))
        torch.testing.assert_close(model(x), -model.output(f6))
    assert (model(x) <= 0).all()


def test_1998_contract_and_class_limit() -> None:
    torch.manual_seed(0)
    _check_contract(lenet5_1998(), 10)
    model = create_model("lenet5_1998", num_classes=5)
    assert model.output.centres.shape == (5, 84)
    torch.testing.assert_close(model.output.centres, digit_centres()[:5])
    with pytest.raises(CnnlabError, match="1 to 10 classes"):
        model.reset_classifier(11)
    with pytest.raises(CnnlabError, match="1 to 10 classes"):
        lenet5_1998(num_classes=100)
