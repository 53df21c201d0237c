"""tv/<name> and timm/<name> honour the same contract as zoo models."""

import pytest
import torch
import torchvision

from cnnlab.errors import CnnlabError
from cnnlab.inspect import summary
from cnnlab.models import AuxOutput, create_model, load_torchvision_state_dict
from tests.models.helpers import nontrivial_init


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "mobilenet_v3_small", "densenet121", "convnext_tiny", "googlenet", "efficientnet_b0"])
def test_torchvision_adapter_contract(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(f"tv/{name}", num_classes=4).eval()
    nontrivial_init(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.ndim == 4
        torch.testing.assert_close(model.forward_head(features), model(x))
        assert model(x).shape == (2, 4)
    assert model.feature_layers() and all(model.get_submodule(s) is not None for s in model.feature_layers())
    model.reset_classifier(9)
    with torch.no_grad():
        assert model(x).shape == (2, 9)


def test_torchvision_aux_output_order() -> None:
    model = create_model("tv/googlenet", num_classes=3, aux_logits=True).train()
    out = model(torch.randn(2, 3, 96, 96))
    assert isinstance(out, AuxOutput) and len(out.aux) == 2 and out.logits.shape == (2, 3)


def test_torchvision_adapter_in_chans_and_summary() -> None:
    model = create_model("tv/resnet18", in_chans=1, num_classes=10)
    assert model.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 10)
    assert summary("tv/resnet50", (3, 224, 224)).total_params == 25_557_032


def test_zoo_model_loads_torchvision_weights_by_position() -> None:
    theirs = nontrivial_init(torchvision.models.resnet18()).eval()
    ours = create_model("resnet18")
    load_torchvision_state_dict(ours, theirs.state_dict())
    assert ours.pretrained_cfg["mean"] == (0.485, 0.456, 0.406)
    with pytest.raises(CnnlabError, match="holds 122 tensors but ResNet has 218"):
        load_torchvision_state_dict(create_model("resnet34"), theirs.state_dict())
    with pytest.raises(CnnlabError, match="has no transform_input"):
        load_torchvision_state_dict(ours, theirs.state_dict(), transform_input=True)


def test_unknown_external_names() -> None:
    with pytest.raises(CnnlabError, match="torchvision has no classification model"):
        create_model("tv/resnet7")
    pytest.importorskip("timm")
    with pytest.raises(CnnlabError, match="timm has no model"):
        create_model("timm/not_a_model")


def test_timm_adapter_contract() -> None:
    pytest.importorskip("timm")
    model = create_model("timm/resnet18", num_classes=4).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), model(x))
    assert [s.split(".")[-1] for s in model.feature_layers()][-4:] == ["layer1", "layer2", "layer3", "layer4"]
    model.reset_classifier(6)
    with torch.no_grad():
        assert model(x).shape == (2, 6)
    # timm's counts are the references the DESIGN table quotes for models torchvision lacks.
    assert summary("timm/seresnet50", (3, 224, 224)).total_params == summary("se_resnet50", (3, 224, 224)).total_params
