"""VGG-11/13/16/19 with and without BatchNorm: torchvision's counts, weights and MACs."""

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.inspect import summary
from cnnlab.models import model_info
from cnnlab.models import vgg as vgg_module
from tests.models.helpers import assert_equivalent, check_contract

NAMES = ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
DESIGN_PARAMS = {
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg16_bn": 138_365_992,
}
DESIGN_GMACS = {"vgg11": 7.609, "vgg13": 11.308, "vgg16": 15.470, "vgg19": 19.632, "vgg16_bn": 15.470}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_params_equal_torchvision(name: str) -> None:
    assert model_info(name).torchvision == name
    with torch.device("meta"):
        ours = getattr(vgg_module, name)()
        theirs = getattr(torchvision.models, name)()
    assert _params(ours) == _params(theirs)
    assert len(ours.state_dict()) == len(theirs.state_dict())
    if name in DESIGN_PARAMS:
        assert _params(ours) == DESIGN_PARAMS[name]


# The helper's initialisation leaves VGG logits with a standard deviation near its 0.1 floor:
# vgg11_bn clears it at 48x48 (0.11), not at 32x32 (0.08).
@pytest.mark.parametrize("name, side", [("vgg11_bn", 48), ("vgg16", 32)])
def test_equivalent_to_torchvision(name: str, side: int) -> None:
    ours = getattr(vgg_module, name)(num_classes=10)
    theirs = getattr(torchvision.models, name)(num_classes=10)
    assert_equivalent(ours, theirs, (3, side, side))


def test_vgg16_macs_equal_flop_counter() -> None:
    with torch.device("meta"):
        theirs = torchvision.models.vgg16().eval()
    with FlopCounterMode(display=False) as counter:
        theirs(torch.zeros(1, 3, 224, 224, device="meta"))
    assert 2 * summary("vgg16", (3, 224, 224)).total_macs == counter.get_total_flops()


@pytest.mark.parametrize("name", list(DESIGN_GMACS))
def test_gmacs_match_design_table(name: str) -> None:
    macs = summary(name, (3, 224, 224)).total_macs
    assert round(macs / 1e9, 3) == pytest.approx(DESIGN_GMACS[name], abs=1e-3)


def test_stage_layout_follows_table_1() -> None:
    with torch.device("meta"):
        model = vgg_module.vgg19_bn()
    convs = [[n for n, _ in block.named_children() if n.startswith("conv")] for block in model.features]
    assert [len(c) for c in convs] == [2, 2, 4, 4, 4]
    assert isinstance(model.get_submodule("features.block3.conv4.norm"), nn.BatchNorm2d)
    assert model.get_submodule("features.block1.conv1.conv").bias is not None  # as torchvision


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_and_contract(name: str) -> None:
    torch.manual_seed(0)
    # A narrow head (hidden=512) keeps 8 x 120 M FC gradients off a 2-core CI box; the conv
    # stack, the one thing that differs between variants, is the paper's.
    model = getattr(vgg_module, name)(num_classes=5, hidden=512)
    features = check_contract(model, torch.randn(2, 3, 32, 32), 5)
    assert all(p.grad is not None for p in model.features.parameters())
    assert features.shape == (2, 512, 1, 1)
    with torch.no_grad():
        assert model.forward_head(features).shape == (2, 7)
    assert model.feature_layers() == [f"features.block{i}" for i in range(1, 6)]
