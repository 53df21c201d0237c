"""The summary against torchvision's parameter counts, FlopCounterMode and the course's VGG-16 table."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.errors import CnnlabError
from cnnlab.inspect import summary
from cnnlab.nn import conv


@pytest.fixture(scope="module")
def vgg16_summary():
    return summary("torchvision.models:vgg16", (3, 224, 224))


def test_vgg16_parameters_macs_and_activations(vgg16_summary) -> None:
    s = vgg16_summary
    assert s.total_params == 138_357_544  # torchvision's count, exact
    assert s.total_macs == pytest.approx(15.470e9, rel=0.005)  # torchvision's 15.47 "GFLOPS"
    # Input plus every conv, max-pool and fully-connected output; Dropout and the 7x7 adaptive
    # pool are the identity at inference. The course's "24M" total is not the sum of its rows.
    assert s.activation_elements == 15_237_608
    assert s.activation_bytes == 15_237_608 * 4  # 61 MB in float32
    assert s.activation_elements_all_leaves == 15_270_888
    # Storing every ReLU output separately instead would give the 28.8 M figure.
    relu = sum(r.activation_elements for r in s.layers if r.type == "ReLU")
    assert s.activation_elements + relu == pytest.approx(28.8e6, rel=0.001)


def test_zoo_vgg16_matches_torchvision_summary(vgg16_summary) -> None:
    zoo = summary("vgg16", (3, 224, 224))
    assert zoo.total_params == vgg16_summary.total_params
    assert zoo.total_macs == vgg16_summary.total_macs
    assert zoo.activation_elements == 15_237_608
    assert zoo.activation_elements_all_leaves == 15_270_888


@pytest.mark.parametrize("name", ["alexnet", "resnet50", "resnext50_32x4d"])
def test_zoo_activations_match_torchvision(name: str) -> None:
    # Same layers applied in place as torchvision, so the same activation memory. (Models where
    # torchvision pools through F.* instead of modules legitimately differ by those pools.)
    zoo = summary(name, (3, 224, 224))
    reference = summary(f"torchvision.models:{name}", (3, 224, 224))
    assert zoo.activation_elements == reference.activation_elements
    assert zoo.activation_elements_all_leaves == reference.activation_elements_all_leaves


def test_vgg16_rows_hand_checked(vgg16_summary) -> None:
    rows = {r.name: r for r in vgg16_summary.layers}
    conv1 = rows["features.0"]
    assert conv1.output_shape == (64, 224, 224)
    assert conv1.params == 1_792 and conv1.macs == 86_704_128
    assert (conv1.receptive_field, conv1.jump) == ((3, 3), (1, 1))
    last_pool = rows["features.30"]
    assert (last_pool.receptive_field, last_pool.jump) == ((212, 212), (32, 32))
    assert rows["classifier.0"].params == 25_088 * 4_096 + 4_096
    assert rows["features.1"].activation_counted is False  # ReLU(inplace=True)
    assert rows["classifier.2"].activation_counted is False  # Dropout in eval returns its input


@pytest.mark.parametrize(
    "name, params",
    [
        ("resnet18", 11_689_512),
        ("resnet50", 25_557_032),
        ("mobilenet_v2", 3_504_872),
        ("densenet121", 7_978_856),
        ("efficientnet_b0", 5_288_548),
        ("convnext_tiny", 28_589_128),
    ],
)
def test_macs_agree_with_flop_counter_mode(name: str, params: int) -> None:
    s = summary(f"torchvision.models:{name}", (3, 224, 224))
    assert s.total_params == params
    with torch.device("meta"):
        model = getattr(torchvision.models, name)().eval()
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, 224, 224, device="meta"))
    assert 2 * s.total_macs == counter.get_total_flops()  # FlopCounterMode counts 2 per MAC


def _resident_bytes() -> int:
    """Return this process's resident memory now (Linux), the high-water mark being no measure of one call."""
    import os

    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc/self/statm")
def test_large_models_summarise_without_weights() -> None:
    """What the old 2-second bound stood for: no weights are allocated (VGG-19's are 575 MB); timing is benchmarks' job,
    and tests/inspect/test_shapes.py checks that no dynamo or sympy import comes with a summary."""
    summary("torchvision.models:resnet152", (3, 224, 224))  # first call: imports and caches settle
    before = _resident_bytes()
    s = summary("torchvision.models:vgg19", (3, 224, 224))
    assert s.total_params == 143_667_240
    assert _resident_bytes() - before < 143_667_240 * 4 // 4  # a quarter of the weights' bytes: none were made


class FunctionalNet(nn.Module):
    """Convolution and matmul called functionally inside forward, with its own parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(4, 3, 3, 3))
        self.proj = nn.Parameter(torch.randn(4, 5), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.kernel, padding=1)  # (B, 4, H, W)
        x = x.mean(dim=(2, 3))  # (B, 4)
        return x @ self.proj  # (B, 5)


def test_functional_calls_are_counted() -> None:
    s = summary(FunctionalNet(), (3, 8, 8))
    assert s.total_macs == 8 * 8 * 4 * 3 * 9 + 4 * 5
    assert s.total_params == 4 * 3 * 9 + 20
    assert s.trainable_params == 4 * 3 * 9
    row = s.layers[0]
    assert row.frozen_params == 20


def test_live_model_is_untouched() -> None:
    model = torchvision.models.resnet18().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = summary(model, (3, 64, 64))
    assert model.training and next(model.parameters()).device.type == "cpu"
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert s.total_params == 11_689_512
    # Hooks live only inside the trace: none remain on any module.
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks


def test_asymmetric_same_padding_field_and_macs() -> None:
    net = nn.Sequential(conv(1, 2, 3, stride=2, padding="same"), conv(2, 2, 3, stride=2, padding="same"))
    s = summary(net, (1, 16, 16))
    first, second = s.layers
    assert first.output_shape == (2, 8, 8) and second.output_shape == (2, 4, 4)
    assert (second.receptive_field, second.jump) == ((7, 7), (4, 4))
    # i=16, k=3, s=2: TensorFlow pads (0, 1), so the first unit's field is centred on pixel 1.
    assert first.start == (1.0, 1.0)
    assert s.total_macs == 8 * 8 * 2 * 9 + 4 * 4 * 2 * 2 * 9


def test_residual_add_takes_the_wider_field() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 1, 3, padding=1)
            self.b = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.b(self.a(x))

    s = summary(Residual(), (1, 10, 10))
    container = [r for r in s.layers if r.type == "Residual"][0]
    assert container.receptive_field == (5, 5)
    assert container.elementwise_ops == 100  # the add, charged to the module that does it


def test_json_and_csv_outputs(vgg16_summary) -> None:
    data = json.loads(vgg16_summary.to_json())
    for key in ("total_params", "trainable_params", "total_macs", "activation_elements", "activation_bytes", "layers"):
        assert key in data
    layer = data["layers"][0]
    for key in ("name", "type", "output_shape", "params", "macs", "receptive_field"):
        assert key in layer
    csv_lines = vgg16_summary.to_csv().splitlines()
    assert csv_lines[0].startswith("name,type,output_shape,params")
    assert len(csv_lines) == len(vgg16_summary.layers) + 1
    text = vgg16_summary.render()
    assert "features.0" in text and "138,357,544" in text


def test_training_memory_estimate(vgg16_summary) -> None:
    memory = vgg16_summary.training_memory_bytes(batch_size=2, optimizer_states=1)
    assert memory["weights"] == memory["gradients"] == memory["optimizer_state"] == 138_357_544 * 4
    assert memory["activations"] == 15_270_888 * 4 * 2
    assert memory["total"] == sum(v for k, v in memory.items() if k != "total")


def test_bad_inputs_raise_one_line_errors() -> None:
    with pytest.raises(CnnlabError, match="cannot run on input 3x4x4"):
        summary("torchvision.models:vgg16", (3, 4, 4))
    with pytest.raises(CnnlabError, match="unknown model 'vgg-nonexistent'"):
        summary("vgg-nonexistent", (3, 32, 32))
    with pytest.raises(CnnlabError, match="cannot import"):
        summary("torchvision.models:nonexistent", (3, 32, 32))
    with pytest.raises(CnnlabError, match="positive"):
        summary(nn.Conv2d(3, 3, 3), (3, 0, 4))


def test_size_preserving_max_pool_is_counted() -> None:
    # Inception's pool branch (3x3, stride 1, pad 1) stores a new map; only adaptive pools to
    # the size they already have are the identity.
    s = summary(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.MaxPool2d(3, 1, 1)), (3, 8, 8))
    assert s.activation_elements == 3 * 64 + 8 * 64 + 8 * 64
    assert s.layers[1].activation_counted


class WithMask(nn.Module):
    """A plain tensor attribute (not a buffer) used in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.mask = torch.ones(1, 4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.mask


def test_plain_tensor_attributes_go_to_meta_too() -> None:
    model = WithMask()
    s = summary(model, (3, 8, 8))
    assert s.total_params == 4 * 27 + 4
    assert model.mask.device.type == "cpu"  # the user's model keeps its tensor


def test_output_field_is_none_after_an_op_the_tracker_cannot_follow() -> None:
    from cnnlab.nn import StochasticPool2d

    net = nn.Sequential(nn.Conv2d(1, 1, 3), StochasticPool2d(2), nn.Conv2d(1, 1, 3))
    assert summary(net, (1, 16, 16)).output_receptive_field is None


def test_output_field_of_a_model_ending_in_se() -> None:
    from cnnlab.nn import SqueezeExcitation

    net = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), SqueezeExcitation(16, 4))
    assert summary(net, (16, 8, 8)).output_receptive_field == (3, 3)


def test_max_unpool_is_not_mistaken_for_a_pool() -> None:
    class PoolUnpool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pool = nn.MaxPool2d(2, return_indices=True)
            self.unpool = nn.MaxUnpool2d(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y, indices = self.pool(x)
            return self.unpool(y, indices)

    assert summary(PoolUnpool(), (1, 8, 8)).layers[-1].output_shape == (1, 8, 8)


def test_factory_and_forward_failures_are_one_line_errors() -> None:
    with pytest.raises(CnnlabError, match="not an nn.Module"):
        summary("os:getcwd", (3, 8, 8))
    with pytest.raises(CnnlabError, match="failed when called"):
        summary("torch.nn:Conv2d", (3, 8, 8))
    with pytest.raises(CnnlabError, match="cannot run on input 3x32x32"):
        summary("tv/vit_b_16", (3, 32, 32))  # torchvision asserts the 224 size


@pytest.mark.parametrize("builder", [torchvision.models.resnet18, torchvision.models.densenet121, torchvision.models.mobilenet_v2])
def test_per_layer_rows_reproduce_torchinfo_pass_size(builder) -> None:
    torchinfo = pytest.importorskip("torchinfo")
    model = builder()
    ours = summary(model, (3, 64, 64))
    theirs = torchinfo.summary(model, input_size=(1, 3, 64, 64), verbose=0)
    assert ours.torchinfo_pass_bytes() == theirs.total_output_bytes


def test_functional_outputs_have_their_own_column_and_enter_training_memory() -> None:
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x + self.conv(x)  # a new tensor: counted
            y += 1  # in place: not a new tensor
            return torch.cat([y, x], dim=1).flatten(1)  # cat: new; flatten: a view

    s = summary(Residual(), (4, 5, 5))
    root = next(r for r in s.layers if r.type == "Residual")
    assert root.functional_elements == 100 + 200
    assert s.functional_elements == 300
    memory = s.training_memory_bytes()
    assert memory["activations"] == (s.activation_elements_all_leaves + 300) * 4
    # DenseNet's concatenations are where its memory goes: they count, in every dense layer.
    dense = summary(torchvision.models.densenet121(), (3, 64, 64))
    assert dense.functional_elements > dense.activation_elements // 4
