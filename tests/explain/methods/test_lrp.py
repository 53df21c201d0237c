"""LRP: conservation layer by layer (every bias and BN shift zeroed), zennit's output, refusals."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain import attribute, verify_no_hooks
from tests.explain.support import randomise_batchnorm, unchanged


def _zero_shifts(model: nn.Module, seed: int = 0) -> nn.Module:
    """Zero every bias, every BN beta and running mean; draw BN gamma and variance (so BN is a pure scale).

    Weights are redrawn fan-in Kaiming, so activations stay of order one: a zoo's small-std
    classifier init leaves logits near 1e-10, where any stabiliser swamps the relevance.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5)
            if getattr(module, "bias", None) is not None:
                module.bias.zero_()
            if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
                module.running_mean.zero_()
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
    return model.eval()


def _check_conservation(model: nn.Module, x: torch.Tensor) -> None:
    """In float64 every op conserves to 1e-4 relative; in float32 the input's total matches the logit to 1e-4."""
    with unchanged(model):
        single = attribute(model, x, "lrp", composite="epsilon", epsilon=1e-9, stabilizer=1e-9)
    logit = single.extras["logits"].gather(1, single.targets[:, None]).squeeze(1)
    # float32 sums of relevance that cancel lose digits: judge them against the total magnitude.
    scale = single.maps.flatten(1).abs().sum(1)
    assert ((single.maps.flatten(1).sum(1) - logit).abs() / scale).max() < 1e-4
    model.double()
    try:
        result = attribute(model, x.double(), "lrp", composite="epsilon", epsilon=1e-9, stabilizer=1e-9, record=True)
    finally:
        model.float()
    logits = result.extras["logits"].gather(1, result.targets[:, None]).squeeze(1)
    records = result.extras["conservation"]
    assert len(records) >= 4 and result.maps.dtype == torch.float64
    for label, out_sum, in_sum in records:
        rel = (in_sum - out_sum).abs() / out_sum.abs().clamp(min=1e-30)
        assert rel.max() < 1e-4, (label, out_sum, in_sum)
    torch.testing.assert_close(result.maps.flatten(1).sum(1), logits, rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("name", ["vgg16", "resnet18", "resnet50", "densenet121", "googlenet", "mobilenet_v2", "mobilenet_v1",
                                  "alexnet", "lenet5", "resnet20"])
def test_epsilon_rule_conserves_relevance_layer_by_layer(name: str) -> None:
    """Basic and bottleneck residuals, concatenations, depth-wise convs, GoogLeNet's input transform, BN merges."""
    from cnnlab.models import create_model, model_info

    torch.manual_seed(0)
    model = _zero_shifts(create_model(name, num_classes=10))
    channels, _, _ = model_info(name).input_size
    size = {"alexnet": 224, "lenet5": 32, "resnet20": 32}.get(name, 64)
    _check_conservation(model, torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(1)))


def test_conservation_through_the_input_normalisation_and_scaled_sums() -> None:
    """PixelModel's (x - mean) / std and a sum with alpha, a broadcast and a difference pass relevance unchanged."""
    from cnnlab.explain import PixelModel
    from cnnlab.models import create_model

    torch.manual_seed(0)
    pixel = PixelModel(_zero_shifts(create_model("resnet20", num_classes=10)), (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)).eval()
    _check_conservation(pixel, torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))

    class Sums(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, bias=False)
            self.b = nn.Conv2d(3, 4, 3, bias=False)
            self.fc = nn.Linear(4, 2, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a, b = self.a(x), self.b(x)
            y = torch.add(a, b, alpha=0.5) - b.mean((2, 3), keepdim=True)  # alpha, a broadcast, a difference
            y = y * 2.0 + 0.0
            return self.fc(y.mean((2, 3)))

    sums = _zero_shifts(Sums())
    _check_conservation(sums, torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2)))


def test_epsilon_rule_conserves_relevance_on_a_preactivation_resnet() -> None:
    from cnnlab.models import create_model

    torch.manual_seed(0)
    model = _zero_shifts(create_model("preact_resnet18", num_classes=10))
    _check_conservation(model, torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)))


def _zennit(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, composite: object) -> torch.Tensor:
    from zennit.attribution import Gradient

    with torch.no_grad():
        logits = model(x)
    seed = torch.zeros_like(logits).scatter(1, targets[:, None], logits.gather(1, targets[:, None]))
    with Gradient(model=model, composite=composite) as attributor:
        _, relevance = attributor(x, seed)
    return relevance


def _close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    scale = theirs.abs().max()
    assert scale > 0
    assert ((ours - theirs).abs().max() / scale) < 1e-4, float((ours - theirs).abs().max() / scale)


@pytest.mark.slow
def test_equals_zennit_on_vgg16() -> None:
    zennit = pytest.importorskip("zennit")
    from zennit.composites import EpsilonGammaBox, EpsilonPlusFlat

    torch.manual_seed(0)
    model = torchvision.models.vgg16().eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    ours = attribute(model, x, "lrp", composite="epsilon_plus_flat")
    _close(ours.maps, _zennit(model, x, ours.targets, EpsilonPlusFlat()))
    box = attribute(model, x, "lrp", composite="epsilon_gamma_box", low=0.0, high=1.0)
    _close(box.maps, _zennit(model, x, box.targets, EpsilonGammaBox(low=0.0, high=1.0)))
    verify_no_hooks(model)
    assert zennit


@pytest.mark.slow
def test_equals_zennit_on_resnet18() -> None:
    pytest.importorskip("zennit")
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    torch.manual_seed(0)
    model = randomise_batchnorm(torchvision.models.resnet18(), 0.1)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with unchanged(model):
        ours = attribute(model, x, "lrp", composite="epsilon_plus_flat")
    _close(ours.maps, _zennit(model, x, ours.targets, EpsilonPlusFlat(canonizers=[ResNetCanonizer()])))
    verify_no_hooks(model)


def test_equals_zennit_on_a_small_conv_bn_net() -> None:
    """The same comparison on a net small enough for every run: conv-BN-ReLU, pools, a sum, linear layers."""
    pytest.importorskip("zennit")
    from zennit.canonizers import SequentialMergeBatchNorm
    from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlusFlat

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Dropout(), nn.Linear(32, 5),
    )
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    model.eval()
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with unchanged(model):
        for ours_name, theirs in [("epsilon_plus_flat", EpsilonPlusFlat(canonizers=[SequentialMergeBatchNorm()])),
                                  ("epsilon_alpha2_beta1", EpsilonAlpha2Beta1(canonizers=[SequentialMergeBatchNorm()])),
                                  ("epsilon_gamma_box", EpsilonGammaBox(low=0.0, high=1.0, canonizers=[SequentialMergeBatchNorm()]))]:
            ours = attribute(model, x, "lrp", composite=ours_name, low=0.0, high=1.0) if ours_name == "epsilon_gamma_box" \
                else attribute(model, x, "lrp", composite=ours_name)
            _close(ours.maps, _zennit(model, x, ours.targets, theirs))


def test_unsupported_layers_are_named() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(CnnlabError, match=r"GroupNorm at '1'"):
        attribute(model, torch.rand(1, 3, 8, 8), "lrp")
    verify_no_hooks(model)

    class Gate(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            y = y * torch.sigmoid(y.mean((2, 3), keepdim=True))  # a squeeze-and-excitation style gate
            return self.fc(y.mean((2, 3)))

    with pytest.raises(CnnlabError, match="product of two activations"):
        attribute(Gate(), torch.rand(1, 3, 8, 8), "lrp")
