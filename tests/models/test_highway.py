"""Highway network: the gate carries or transforms at its extremes, its initial bias, counts by hand."""

import pytest
import torch
from torch import nn

from cnnlab.models.highway import HighwayLayer, highway_net
from cnnlab.models.registry import model_info
from tests.models.helpers import check_contract


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _layer_with_gate(bias: float, channels: int = 8) -> HighwayLayer:
    """Return a highway layer whose gate ignores x: T = sigmoid(bias) everywhere."""
    torch.manual_seed(0)
    layer = HighwayLayer(channels).eval()
    with torch.no_grad():
        layer.gate.weight.zero_()
        layer.gate.bias.fill_(bias)
    return layer


def test_very_negative_gate_bias_carries_the_input() -> None:
    layer = _layer_with_gate(-50.0)  # T = sigmoid(-50) ~ 2e-22: C = 1 - T = 1
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), x)


def test_very_positive_gate_bias_transforms() -> None:
    layer = _layer_with_gate(50.0)  # T = 1: y = H(x)
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        h = layer.transform(x)
        assert not torch.allclose(h, x, atol=1e-2)
        torch.testing.assert_close(layer(x), h)


def test_half_open_gate_averages() -> None:
    layer = _layer_with_gate(0.0)  # T = C = 1/2
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), (layer.transform(x) + x) / 2)


def test_gate_bias_starts_negative() -> None:
    model = highway_net()
    biases = [m.gate.bias for m in model.modules() if isinstance(m, HighwayLayer)]
    assert len(biases) == 9
    assert all(torch.all(b == -2.0) for b in biases)
    model = highway_net(gate_bias=-3.0)
    assert all(torch.all(m.gate.bias == -3.0) for m in model.modules() if isinstance(m, HighwayLayer))
    # At init the gates lean to carrying: mean T = sigmoid(-2 + small) well below 1/2.
    layer = HighwayLayer(16).eval()
    with torch.no_grad():
        gate = torch.sigmoid(layer.gate(torch.randn(4, 16, 8, 8)))
    assert gate.mean() < 0.3


def _highway_layer_count(c: int) -> int:
    """H: 3x3 conv without bias + BN (2C); T: 3x3 conv with bias."""
    return (9 * c * c + 2 * c) + (9 * c * c + c)


def test_parameter_count_by_hand() -> None:
    stem = 9 * 3 * 32 + 2 * 32
    transitions = (9 * 32 * 64 + 2 * 64) + (9 * 64 * 128 + 2 * 128)  # stride-2 conv + BN
    layers = 3 * sum(_highway_layer_count(c) for c in (32, 64, 128))
    head = 128 * 10 + 10
    with torch.device("meta"):
        model = highway_net()
    assert _count(model) == stem + transitions + layers + head == 1_257_994
    assert _count(HighwayLayer(32)) == _highway_layer_count(32) == 18_528


def test_forward_backward_and_contract() -> None:
    torch.manual_seed(0)
    model = highway_net(num_classes=5)
    features = check_contract(model, torch.randn(2, 3, 16, 16), 5)
    assert features.shape == (2, 128, 4, 4)
    assert model.feature_layers() == ["stages.stage1", "stages.stage2", "stages.stage3"]
    info = model_info("highway_net")
    assert info.small_input and info.default_classes == 10 and info.input_size == (3, 32, 32)
    with pytest.raises(TypeError):
        highway_net(colour="blue")
