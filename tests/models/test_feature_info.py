"""feature_info: each stage's module, channels and reduction, the contract detection and segmentation heads read."""

import pytest
import torch

from cnnlab.models import create_model, list_models, model_info

CLASSIFIERS = [n for n in list_models() if model_info(n).classifier]


def test_resnet18_matches_timms_feature_info() -> None:
    timm = pytest.importorskip("timm")
    ours = create_model("resnet18").feature_info()
    theirs = {i["module"]: (i["num_chs"], i["reduction"]) for i in timm.create_model("resnet18", pretrained=False).feature_info}
    assert [(i.module, i.channels, i.reduction) for i in ours] == [(m, *theirs[m]) for m in ("layer1", "layer2", "layer3", "layer4")]


def test_by_hand_and_the_model_is_left_alone() -> None:
    model = create_model("resnet20")  # He et al.'s CIFAR net: 16, 32, 64 channels at strides 1, 2, 4
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert [(i.channels, i.reduction) for i in model.feature_info((3, 32, 32))] == [(16, 1), (32, 2), (64, 4)]
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks for m in model.modules())  # no hook survives the call


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_classifier_describes_its_stages(name: str) -> None:
    info = model_info(name)
    model = create_model(name)
    stages = model.feature_info(info.input_size)
    assert [s.module for s in stages] == model.feature_layers()
    assert all(s.channels > 0 and s.reduction >= 1 for s in stages)
    assert [s.reduction for s in stages] == sorted(s.reduction for s in stages)  # shallow to deep
