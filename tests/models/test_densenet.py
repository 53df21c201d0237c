"""DenseNet: counts, MACs and logits equal torchvision's; DenseNet-BC-100 matches the paper."""

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.inspect import summary
from cnnlab.models import densenet
from cnnlab.models.registry import model_info
from tests.models.helpers import assert_equivalent, check_contract, stage_outputs

TORCHVISION = {  # name: (params, GMACs at 224) from torchvision 0.29's weight metadata
    "densenet121": (7_978_856, 2.834),
    "densenet161": (28_681_000, 7.728),
    "densenet169": (14_149_480, 3.360),
    "densenet201": (20_013_928, 4.291),
}
ALL = [*TORCHVISION, "densenet_bc_100_k12"]


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_param_counts_equal_torchvision(name: str) -> None:
    with torch.device("meta"):
        ours = getattr(densenet, name)()
        theirs = getattr(torchvision.models, name)()
    count = sum(p.numel() for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters()) == TORCHVISION[name][0]


def test_densenet_bc_100_k12_matches_design_table() -> None:
    with torch.device("meta"):
        model = densenet.densenet_bc_100_k12()
    assert sum(p.numel() for p in model.parameters()) == 769_162  # DESIGN table; the paper: 0.8M
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(convs) + len(linears) == 100  # depth: 1 stem + 3 x 16 x 2 + 2 transitions + 1 fc
    # Channels: 24 + 16 k = 216 -> 108, 108 + 16 k = 300 -> 150, 150 + 16 k = 342.
    assert model.num_features == 342 and model.num_classes == 10
    info = model_info("densenet_bc_100_k12")
    assert info.small_input and info.default_classes == 10 and info.input_size == (3, 32, 32)


def test_densenet121_equivalent_to_torchvision() -> None:
    assert_equivalent(densenet.densenet121(), torchvision.models.densenet121(), (3, 64, 64))


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_and_contract(name: str) -> None:
    torch.manual_seed(0)
    model = getattr(densenet, name)(num_classes=5)
    x = torch.randn(2, 3, 32, 32)
    features = check_contract(model, x, 5)
    assert features.shape[1] == model.num_features
    with torch.no_grad():
        logits, stage_maps = stage_outputs(model, x)
        torch.testing.assert_close(model.forward_head(features), logits)
    assert logits.shape == (2, 7)
    assert list(stage_maps) == model.feature_layers()
    assert not any(m._forward_hooks for m in model.modules())
    assert all(name.startswith("features.denseblock") for name in stage_maps)
    assert all(m.ndim == 4 for m in stage_maps.values())


def test_dense_block_concatenates_every_layer() -> None:
    model = densenet.densenet_bc_100_k12().eval()
    block = model.get_submodule("features.denseblock1")
    x = torch.randn(2, 24, 8, 8)
    with torch.no_grad():
        out = block(x)
    assert out.shape == (2, 24 + 16 * 12, 8, 8)
    torch.testing.assert_close(out[:, :24], x)  # the block input passes through untouched (Eq. 2)
    with torch.no_grad():
        assert model.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 342, 8, 8)


def test_drop_rate_adds_dropout_after_each_dense_layer() -> None:
    model = densenet.densenet_bc_100_k12(drop_rate=0.2)
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 48 and all(d.p == 0.2 for d in dropouts)


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_macs_equal_flop_counter(name: str) -> None:
    ours = summary(name, (3, 224, 224))
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)().eval()
    with FlopCounterMode(display=False) as counter:
        theirs(torch.zeros(1, 3, 224, 224, device="meta"))
    assert 2 * ours.total_macs == counter.get_total_flops()
    assert round(ours.total_macs / 1e9, 3) == TORCHVISION[name][1]
