"""Tests generated from the registry: every model builds, runs forward and backward, and counts right."""

import pytest
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.errors import CnnlabError
from cnnlab.inspect import summary
from cnnlab.models import AuxOutput, create_model, list_models, model_info, register_model

ALL = list_models()
CLASSIFIERS = [n for n in ALL if model_info(n).classifier]
WITH_TORCHVISION = [n for n in ALL if model_info(n).torchvision]
# Models too slow for a forward + backward on 2 CPU cores at their minimum size are listed here
# with the reason; none is skipped today.
SLOW: dict[str, str] = {}


def _small_input(name: str, training: bool) -> tuple[int, int, int]:
    info = model_info(name)
    side = info.min_train_size if training else info.min_eval_size
    return (info.input_size[0], side, side)


def test_registry_refuses_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model(family="x", paper="x", year=2000, name="resnet18")(lambda **_: None)


def test_unknown_name_gives_a_hint() -> None:
    with pytest.raises(CnnlabError, match="did you mean resnet18"):
        create_model("resnet1")
    with pytest.raises(CnnlabError, match="does not take these options"):
        create_model("resnet18", colour="blue")


def test_list_models_pattern() -> None:
    assert list_models("resnet*") == ["resnet101", "resnet110", "resnet152", "resnet18", "resnet20", "resnet32",
                                      "resnet34", "resnet44", "resnet50", "resnet56"]


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_forward_backward_and_contract(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    x = torch.randn(2, *_small_input(name, training=True))
    model.train()
    out = model(x)
    logits = out.logits if isinstance(out, AuxOutput) else out
    assert logits.shape == (2, 5)
    loss = logits.square().mean() + sum(a.square().mean() for a in getattr(out, "aux", ()))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)

    model.eval()
    x = torch.randn(2, *_small_input(name, training=False))
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.ndim == 4
        torch.testing.assert_close(model.forward_head(features), model(x))
    for stage in model.feature_layers():
        model.get_submodule(stage)  # every stage name resolves
    assert model.feature_layers(), "a classifier names its stages"
    model.reset_classifier(7)
    with torch.no_grad():
        assert model(x).shape == (2, 7)


@pytest.mark.parametrize("name", ALL)
def test_summary_on_meta_at_default_input(name: str) -> None:
    info = model_info(name)
    result = summary(name, info.input_size)
    with torch.device("meta"):
        model = create_model(name).eval()
    # Independent references: the module's own parameters, and PyTorch's FLOP counter (2 per MAC).
    assert result.total_params == sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *info.input_size, device="meta"))
    assert 2 * result.total_macs == counter.get_total_flops()


# The course's architectures (one representative each, plus the experiments' networks): what the zoo must hold.
COURSE = {"lenet5", "lenet5_1998", "alexnet", "alexnet_2012", "zfnet", "vgg16", "nin", "all_cnn_c", "googlenet",
          "inception_v3", "resnet18", "resnet20", "preact_resnet18", "wrn28_10", "resnext50_32x4d", "densenet121",
          "densenet_bc_100_k12", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "se_resnet50", "efficientnet_b0",
          "xception", "convnext_tiny", "highway_net", "unet", "course_cifar100",
          # the experiments': degradation, distillation, noisy student, snapshots, ablation, shuffled pixels
          "plain20", "plain56", "lenet5_tiny", "lenet5_dropout", "lenet5_bn", "course_cifar100_nobn",
          "course_cifar100_dropout", "mlp", "small_cnn", "unet_small", "pointwise",
          "yolo_v1", "centernet"}


def test_the_zoo_has_every_model_of_the_course() -> None:
    assert COURSE <= set(ALL), sorted(COURSE - set(ALL))
    # Only the dense-prediction nets and the detectors are not classifiers: the ones segmentation and detection train.
    dense = {n for n in ALL if n.startswith("unet") or n == "pointwise"}
    detectors = {n for n in ALL if model_info(n).detector}
    assert {n for n in ALL if not model_info(n).classifier} == dense | detectors and "yolo_v1" in detectors
    # Every zoo name torchvision also has is marked, so none escapes the equivalence tests below.
    assert set(WITH_TORCHVISION) == set(ALL) & set(torchvision.models.list_models())


@pytest.mark.parametrize("name", WITH_TORCHVISION)
def test_params_and_macs_equal_torchvision(name: str) -> None:
    info = model_info(name)
    ours = summary(name, info.input_size)
    builder = getattr(torchvision.models, info.torchvision)
    options = {}
    if info.torchvision in ("googlenet", "inception_v3"):
        # Build torchvision's model with our default aux setting (GoogLeNet: none, as DESIGN counts).
        with torch.device("meta"):
            children = [child for child, _ in create_model(name).named_children()]
        options = {"init_weights": True, "aux_logits": any(c.startswith("aux") for c in children)}
    with torch.device("meta"):
        theirs = builder(**options).eval()
    assert ours.total_params == sum(p.numel() for p in theirs.parameters())
    with FlopCounterMode(display=False) as counter:
        theirs(torch.zeros(1, *info.input_size, device="meta"))
    assert 2 * ours.total_macs == counter.get_total_flops()
    # torchvision's "GFLOPS" column is a MAC count of conv and linear layers: equal to 3 decimals.
    weights = torchvision.models.get_model_weights(info.torchvision)
    ops = next(iter(weights)).meta["_ops"]
    assert round(ours.total_macs / 1e9, 3) == pytest.approx(ops, abs=1e-3)


def test_a_type_error_inside_a_builder_is_not_called_a_bad_option() -> None:
    """Only a keyword the user gave that a signature refuses is their mistake; a builder's own bug keeps its traceback."""
    from cnnlab.models import registry

    @register_model(family="probe", paper="none", year=2026, name="_type_error_probe")
    def broken(num_classes: int = 10, in_chans: int = 3) -> torch.nn.Module:
        return torch.nn.Linear(in_chans, "ten")  # a bug: a string where an int belongs

    try:
        with pytest.raises(TypeError, match="empty\\(\\)|must be|not str"):
            create_model("_type_error_probe")
        with pytest.raises(CnnlabError, match="_type_error_probe does not take these options"):
            create_model("_type_error_probe", colour="blue")
    finally:
        registry._REGISTRY.pop("_type_error_probe")
