"""GoogLeNet and Inception v3: counts, MACs and logits equal torchvision's; aux heads in training."""

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.inspect import summary
from cnnlab.models import AuxOutput, load_torchvision_state_dict
from cnnlab.models.inception import googlenet, inception_v3
from cnnlab.models.registry import model_info
from tests.models.helpers import assert_equivalent, check_contract, stage_outputs

BUILDERS = {"googlenet": googlenet, "inception_v3": inception_v3}


def _numel(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "aux_logits", "expected"),
    [
        ("googlenet", False, 6_624_904),  # DESIGN table, torchvision's num_params
        ("googlenet", True, 13_004_888),
        ("inception_v3", True, 27_161_264),  # DESIGN table (with aux head)
        ("inception_v3", False, 27_161_264 - 3_326_696),  # minus the 17x17 aux head
    ],
)
def test_param_counts_equal_torchvision(name: str, aux_logits: bool, expected: int) -> None:
    with torch.device("meta"):
        ours = BUILDERS[name](aux_logits=aux_logits)
        theirs = getattr(torchvision.models, name)(aux_logits=aux_logits, init_weights=True)
    assert _numel(ours) == _numel(theirs) == expected


@pytest.mark.parametrize("aux_logits", [False, True], ids=["no_aux", "aux_and_transform_input"])
def test_googlenet_equivalent_to_torchvision(aux_logits: bool) -> None:
    # With aux heads the state dicts hold them between inception5b and fc: order is checked here.
    # transform_input rides along with the aux variant to check the ImageNet re-scaling too.
    theirs = torchvision.models.googlenet(aux_logits=aux_logits, transform_input=aux_logits, init_weights=True)
    ours = googlenet(aux_logits=aux_logits)
    assert_equivalent(ours, theirs, (3, 64, 64), transform_input=aux_logits)
    assert ours.transform_input is aux_logits


def test_googlenet_weights_with_aux_heads_load_into_the_default_model() -> None:
    # torchvision's GoogLeNet weights file carries aux1/aux2: torchvision builds with them to load
    # it, then drops them. The zoo's default model (no aux heads) takes the file the same way.
    from tests.models.helpers import nontrivial_init

    with_aux = torchvision.models.googlenet(aux_logits=True, init_weights=True)
    nontrivial_init(with_aux)
    state = with_aux.state_dict()
    assert sum(k.startswith(("aux1.", "aux2.")) for k in state) == 364 - 344  # the counts
    with_aux.aux_logits, with_aux.aux1, with_aux.aux2 = False, None, None  # what torchvision does
    ours = googlenet()
    with pytest.warns(UserWarning, match=r"dropped 20 tensors of the auxiliary heads aux1, aux2"):
        load_torchvision_state_dict(ours, state)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), with_aux.eval()(x), rtol=1e-4, atol=1e-4)
    assert not any(k.startswith("aux") for k in ours.state_dict())


def test_inception_v3_equivalent_to_torchvision() -> None:
    theirs = torchvision.models.inception_v3(init_weights=True)  # aux head on: its weights transfer too
    assert_equivalent(inception_v3(), theirs, (3, 107, 107))


@pytest.mark.parametrize(("name", "side"), [("googlenet", 32), ("inception_v3", 75)])
def test_forward_backward_and_contract(name: str, side: int) -> None:
    torch.manual_seed(0)
    model = BUILDERS[name](num_classes=5, aux_logits=False)
    x = torch.randn(2, 3, side, side)
    with torch.no_grad():
        assert isinstance(model.train()(x), torch.Tensor)  # no aux heads: no AuxOutput in training
    features = check_contract(model, x, 5)
    assert features.shape[1] == model.num_features
    with torch.no_grad():
        logits, stage_maps = stage_outputs(model, x)
        torch.testing.assert_close(model.forward_head(features), logits)
    assert logits.shape == (2, 7)
    assert list(stage_maps) == model.feature_layers()
    assert not any(m._forward_hooks for m in model.modules())
    assert all(m.ndim == 4 for m in stage_maps.values())


def test_googlenet_training_returns_aux_output_in_input_to_output_order() -> None:
    torch.manual_seed(0)
    model = googlenet(num_classes=5, aux_logits=True).train()
    x = torch.randn(2, 3, 64, 64)
    out = model(x)
    assert isinstance(out, AuxOutput) and out.logits.shape == (2, 5)
    assert len(out.aux) == 2 and all(a.shape == (2, 5) for a in out.aux)
    # aux[0] is the head on 4a, aux[1] the head on 4d: a gradient from aux[0] alone stops at 4a.
    out.aux[0].sum().backward()
    assert model.aux1.classifier.weight.grad is not None and model.aux2.classifier.weight.grad is None
    assert model.inception4a.branch1.conv.weight.grad is not None
    assert model.inception4b.branch1.conv.weight.grad is None
    model.eval()
    with torch.no_grad():
        assert isinstance(model(x), torch.Tensor)  # eval: logits only, aux heads not run


def test_googlenet_trains_at_its_registered_minimum_with_aux_heads() -> None:
    side = model_info("googlenet").min_train_size
    model = googlenet(num_classes=3, aux_logits=True).train()
    out = model(torch.randn(2, 3, side, side))
    (out.logits.sum() + sum(a.sum() for a in out.aux)).backward()
    with pytest.raises(RuntimeError):
        model.eval()(torch.randn(1, 3, side - 1, side - 1))


def test_inception_v3_training_returns_aux_output_at_299() -> None:
    info = model_info("inception_v3")
    assert info.input_size == (3, 299, 299) and info.min_train_size == 299 and info.min_eval_size == 75
    model = inception_v3(num_classes=4).train()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 299, 299))
    assert isinstance(out, AuxOutput) and out.logits.shape == (2, 4)
    assert len(out.aux) == 1 and out.aux[0].shape == (2, 4)


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_reset_classifier_resets_aux_heads(name: str) -> None:
    model = BUILDERS[name](num_classes=5, aux_logits=True)
    model.reset_classifier(7)
    heads = [head.classifier for head in model.aux_heads()]
    assert len(heads) == (2 if name == "googlenet" else 1)
    assert model.fc.out_features == 7 and all(h.out_features == 7 for h in heads)


@pytest.mark.parametrize(("name", "side", "gmacs"), [("googlenet", 224, 1.498), ("inception_v3", 299, 5.713)])
def test_macs_equal_flop_counter(name: str, side: int, gmacs: float) -> None:
    ours = summary(name, (3, side, side))
    with torch.device("meta"):
        theirs = getattr(torchvision.models, name)(init_weights=True).eval()
    with FlopCounterMode(display=False) as counter:
        theirs(torch.zeros(1, 3, side, side, device="meta"))
    assert 2 * ours.total_macs == counter.get_total_flops()
    assert round(ours.total_macs / 1e9, 3) == gmacs
