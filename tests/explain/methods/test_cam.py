"""The CAM family against independent references: Captum, pytorch-grad-cam, and closed forms.

Every comparison is of real numbers on the layer's grid (and, for Captum, after the same bilinear
upsampling), on a CIFAR ResNet-20 given seeded, non-trivial weights and BatchNorm statistics so
the maps are not degenerate, and on a two-layer model whose maps can be written down by hand.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain import attribute, verify_no_hooks
from cnnlab.models import create_model

LAYER = "stages.layer3"
TARGETS = [6, 2, 0]


def _trained_looking(model: nn.Module, seed: int) -> nn.Module:
    """Give `model` seeded weights, and BatchNorm statistics measured on seeded images, so its maps are not trivial."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
            elif isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(0.5 + torch.rand(c, generator=gen))
                module.bias.copy_(0.2 * torch.randn(c, generator=gen))
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / module.in_features ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
        # Running statistics as training would leave them: the batch statistics of seeded images.
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average
        model.train()
        model(torch.randn(16, *_input_shape(model), generator=gen))
        for norm in norms:
            norm.momentum = 0.1
    return model.eval()


def _input_shape(model: nn.Module) -> tuple[int, int, int]:
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    return (first.in_channels, 32, 32)


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return _trained_looking(create_model("resnet20", num_classes=10), seed=1)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))


def _layer(model: nn.Module, name: str = LAYER) -> nn.Module:
    return dict(model.named_modules())[name]


def _activations(model: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Return the layer's output for `x` from a plain forward hook, removed at once."""
    kept = []
    handle = layer.register_forward_hook(lambda _m, _i, out: kept.append(out.detach().clone()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return kept[0]


def _assert_not_degenerate(maps: torch.Tensor) -> None:
    """The map of each image is neither zero nor flat (so a comparison means something)."""
    flat = maps.flatten(1).double()
    assert bool((flat.amax(1) > 0).all()), flat.amax(1)
    assert bool((flat.std(1) > 0.05 * flat.amax(1)).all()), flat.std(1) / flat.amax(1)


def _close(actual: torch.Tensor, expected: torch.Tensor, rel: float) -> None:
    actual, expected = actual.double(), expected.double()
    scale = float(expected.abs().max())
    diff = float((actual - expected).abs().max())
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert diff <= rel * scale + 1e-12, f"max abs diff {diff:.3e}, reference max {scale:.3e}"


# --- 1. Grad-CAM against Captum -------------------------------------------------------------------


def test_gradcam_equals_captum_layer_gradcam(resnet: nn.Module, images: torch.Tensor) -> None:
    from captum.attr import LayerAttribution, LayerGradCam

    a = attribute(resnet, images, "gradcam", target=TARGETS, layer=LAYER, max_batch=2)
    assert a.targets.tolist() == TARGETS
    assert a.layer_maps.shape == (3, 1, 8, 8) and a.maps.shape == (3, 1, 32, 32)
    _assert_not_degenerate(a.layer_maps)

    resnet.eval()
    reference = LayerGradCam(resnet, _layer(resnet)).attribute(images, target=TARGETS, relu_attributions=True).detach()
    _close(a.layer_maps, reference, 1e-5)
    upsampled = LayerAttribution.interpolate(reference, (32, 32), interpolate_mode="bilinear")
    _close(a.maps, upsampled, 1e-5)
    verify_no_hooks(resnet)


def test_default_target_is_the_predicted_class(resnet: nn.Module, images: torch.Tensor) -> None:
    from captum.attr import LayerGradCam

    a = attribute(resnet, images, "gradcam", layer=LAYER)
    with torch.no_grad():
        predicted = resnet.eval()(images).argmax(1)
    assert a.targets.tolist() == predicted.tolist()
    reference = LayerGradCam(resnet, _layer(resnet)).attribute(images, target=predicted, relu_attributions=True).detach()
    _close(a.layer_maps, reference, 1e-5)
    verify_no_hooks(resnet)


# --- 2. The family against pytorch-grad-cam, before its normalisation -----------------------------


def _identity_scale(cam: np.ndarray, target_size: object = None) -> np.ndarray:
    return np.float32(cam)


@pytest.mark.parametrize("method,cls_name", [
    ("gradcam", "GradCAM"),
    ("gradcam_pp", "GradCAMPlusPlus"),
    ("xgradcam", "XGradCAM"),
    ("hirescam", "HiResCAM"),
    ("layercam", "LayerCAM"),
    ("scorecam", "ScoreCAM"),
])
def test_cam_equals_pytorch_grad_cam(resnet: nn.Module, images: torch.Tensor, monkeypatch: pytest.MonkeyPatch,
                                     method: str, cls_name: str) -> None:
    import pytorch_grad_cam
    import pytorch_grad_cam.base_cam as base_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if method == "scorecam":  # one forward pass per image and channel: two images are enough
        images = images[:2]
    a = attribute(resnet, images, method, target=TARGETS[:len(images)], layer=LAYER, max_batch=2)
    _assert_not_degenerate(a.layer_maps)

    monkeypatch.setattr(base_cam, "scale_cam_image", _identity_scale)
    resnet.eval()
    explainer = getattr(pytorch_grad_cam, cls_name)(model=resnet, target_layers=[_layer(resnet)])
    with explainer:
        reference = explainer(input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in a.targets])
    assert reference.shape == (len(images), 8, 8)
    _close(a.layer_maps[:, 0], torch.from_numpy(reference), 1e-4)
    verify_no_hooks(resnet)


def test_eigencam_equals_the_first_principal_projection(resnet: nn.Module, images: torch.Tensor) -> None:
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    a = attribute(resnet, images, "eigencam", target=TARGETS, layer=LAYER)
    _assert_not_degenerate(a.layer_maps)
    acts = _activations(resnet.eval(), _layer(resnet), images)
    projection = torch.from_numpy(get_2d_projection(acts.numpy()))  # (N, h, w), sign arbitrary
    ours = a.layer_maps[:, 0]
    for n in range(len(images)):
        errors = {s: float((ours[n] - (s * projection[n]).clamp(min=0)).abs().max()) for s in (1.0, -1.0)}
        scale = float(projection[n].abs().max())
        sign = min(errors, key=errors.get)
        assert errors[sign] <= 1e-4 * scale, f"image {n}: max abs diff {errors}, projection max {scale:.3e}"
        # The sign kept is the one whose projection agrees with the summed activation.
        agree = float((sign * projection[n] * acts[n].sum(0)).sum())
        assert agree > 0, (n, sign, agree)
    _close(a.maps, F.interpolate(a.layer_maps, size=(32, 32), mode="bilinear", align_corners=False), 1e-6)
    verify_no_hooks(resnet)


# --- 3. Closed forms on conv -> global average pool -> Linear --------------------------------------


C, K, CLASSES, SIZE = 3, 6, 4, 16


def _two_layer() -> nn.Module:
    torch.manual_seed(5)
    # A 1x1 convolution with stride 2: the layer grid is 8x8, so upsampling is exercised too.
    model = nn.Sequential(nn.Conv2d(C, K, 1, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(K, CLASSES))
    with torch.no_grad():
        model[3].weight.copy_(torch.randn(CLASSES, K))
        model[3].bias.copy_(torch.randn(CLASSES))
    return model.eval()


def test_closed_forms_on_a_two_layer_model() -> None:
    model = _two_layer()
    x = torch.randn(3, C, SIZE, SIZE, generator=torch.Generator().manual_seed(6)) + 0.3
    targets = torch.tensor([2, 0, 3])
    with torch.no_grad():
        acts = model[0](x).double()  # (N, K, h, w), signed: no ReLU
    n, _, h, w = acts.shape
    weight = model[3].weight.detach().double()[targets]  # (N, K): W_ck of each image's class
    g = weight / (h * w)  # the target's gradient at the layer, the same at every location
    sums = acts.sum(dim=(2, 3))  # S_k
    assert float(sums.abs().min()) > 0.1  # XGrad-CAM's S_k / (S_k + 1e-7) is then 1 to ~1e-6

    linear = torch.einsum("nk,nkhw->nhw", weight, acts)
    alpha = g ** 2 / (2 * g ** 2 + sums * g ** 3 + 1e-6)
    pp_weights = (h * w) * alpha * g.clamp(min=0)  # sum over the h*w equal terms
    expected = {
        "cam": linear,
        "gradcam": (linear / (h * w)).clamp(min=0),
        "hirescam": (linear / (h * w)).clamp(min=0),
        "xgradcam": (linear / (h * w)).clamp(min=0),
        "layercam": torch.einsum("nk,nkhw->nhw", weight.clamp(min=0), acts).div(h * w).clamp(min=0),
        "gradcam_pp": torch.einsum("nk,nkhw->nhw", pp_weights, acts).clamp(min=0),
    }

    # Score-CAM, one channel at a time.
    score_maps = torch.zeros(n, h, w, dtype=torch.float64)
    with torch.no_grad():
        for i in range(n):
            scores = []
            for k in range(K):
                mask = F.interpolate(acts[i, k][None, None].float(), size=(SIZE, SIZE), mode="bilinear", align_corners=True)[0, 0]
                mask = (mask - mask.min()) / (mask.max() - mask.min() + 1e-8)
                scores.append(float(model(x[i:i + 1] * mask)[0, targets[i]]))
            soft = torch.tensor(scores, dtype=torch.float64).softmax(0)
            score_maps[i] = (soft[:, None, None] * acts[i]).sum(0)
    expected["scorecam"] = score_maps.clamp(min=0)

    for method, reference in expected.items():
        a = attribute(model, x, method, target=targets, layer="0")
        assert a.targets.tolist() == targets.tolist()
        assert a.layer_maps.shape == (n, 1, h, w), method
        _close(a.layer_maps[:, 0], reference, 1e-5)
        upsampled = F.interpolate(reference[:, None].float(), size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        _close(a.maps, upsampled, 1e-5)
        if method == "cam":
            assert float(a.layer_maps.min()) < 0  # CAM is signed: no ReLU
    # The CAM's mean plus the bias is the logit.
    with torch.no_grad():
        logits = model(x)[torch.arange(n), targets].double()
    _close(linear.mean(dim=(1, 2)) + model[3].bias.detach().double()[targets], logits, 1e-5)
    verify_no_hooks(model)


# --- 4. CAM refuses models it would get wrong --------------------------------------------------------


def test_cam_refuses_lenet() -> None:
    torch.manual_seed(7)
    model = create_model("lenet5", num_classes=10)
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(8))
    with pytest.raises(CnnlabError, match="gradcam"):
        attribute(model, x, "cam", layer="conv2")
    verify_no_hooks(model)


def test_cam_refuses_two_linear_layers_after_the_pool() -> None:
    torch.manual_seed(9)
    # The last Linear takes K inputs, so only the logit check can tell the map would be wrong.
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 5)).eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(10))
    with pytest.raises(CnnlabError, match="gradcam"):
        attribute(model, x, "cam", layer="1")
    verify_no_hooks(model)
    # Grad-CAM has no such restriction.
    a = attribute(model, x, "gradcam", layer="1")
    assert a.layer_maps.shape == (2, 1, 32, 32)
    verify_no_hooks(model)


def test_cam_on_resnet_is_the_classifier_weighted_sum(resnet: nn.Module, images: torch.Tensor) -> None:
    a = attribute(resnet, images, "cam", target=TARGETS, layer=LAYER)
    acts = _activations(resnet.eval(), _layer(resnet), images).double()
    weight = resnet.fc.weight.detach().double()[TARGETS]
    _close(a.layer_maps[:, 0], torch.einsum("nk,nkhw->nhw", weight, acts), 1e-5)
    verify_no_hooks(resnet)


# --- 5. Layer names ------------------------------------------------------------------------------


def test_a_misspelt_layer_lists_the_close_match(resnet: nn.Module, images: torch.Tensor) -> None:
    with pytest.raises(CnnlabError, match=r"stages\.layer3") as error:
        attribute(resnet, images[:2], "gradcam", layer="stages.layr3")
    assert "stages.layr3" in str(error.value)
    verify_no_hooks(resnet)


# --- 6. Guided Grad-CAM --------------------------------------------------------------------------


def test_guided_gradcam_is_guided_backprop_times_upsampled_gradcam(resnet: nn.Module, images: torch.Tensor) -> None:
    guided_cam = attribute(resnet, images, "guided_gradcam", target=TARGETS, layer=LAYER)
    guided = attribute(resnet, images, "guided_backprop", target=TARGETS)
    grad_cam = attribute(resnet, images, "gradcam", target=TARGETS, layer=LAYER)
    assert guided_cam.maps.shape == (3, 3, 32, 32)
    assert float(guided_cam.maps.abs().max()) > 0
    _close(guided_cam.maps, guided.maps * grad_cam.maps, 1e-6)
    _close(guided_cam.layer_maps, grad_cam.layer_maps, 1e-6)

    # And against Captum's GuidedGradCam, upsampled bilinearly as cnnlab does (on a copy whose ReLUs
    # run out of place, as Captum's module hooks need).
    from captum.attr import GuidedGradCam

    peer = copy.deepcopy(resnet).eval()
    for module in peer.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    reference = GuidedGradCam(peer, _layer(peer)).attribute(images, target=TARGETS, interpolate_mode="bilinear").detach()
    _close(guided_cam.maps, reference, 1e-5)
    verify_no_hooks(resnet)
    verify_no_hooks(peer)


# --- the model comes back as it went in -------------------------------------------------------------


def _flags(model: nn.Module) -> tuple[dict, dict, dict]:
    return ({name: m.training for name, m in model.named_modules()},
            {name: p.requires_grad for name, p in model.named_parameters()},
            {name: m.inplace for name, m in model.named_modules() if isinstance(m, nn.ReLU)})


@pytest.mark.parametrize("method", ["gradcam", "scorecam", "guided_gradcam"])
def test_the_model_comes_back_unchanged(images: torch.Tensor, method: str) -> None:
    torch.manual_seed(11)
    model = _trained_looking(create_model("resnet20", num_classes=10), seed=12)
    model.train()
    model.stages.layer1.eval()  # a mix of modes
    model.stages.layer2[0].act.inplace = False  # a mix of in-place flags
    for parameter in [*model.stem.parameters(), *model.stages.layer3[1].parameters()]:
        parameter.requires_grad_(False)
    before = _flags(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert len(set(before[0].values())) == 2 and len(set(before[1].values())) == 2 and len(set(before[2].values())) == 2

    a = attribute(model, images[:2], method, target=[1, 2], layer=LAYER)
    assert torch.isfinite(a.maps).all()

    assert _flags(model) == before
    after = model.state_dict()
    assert after.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(after[key], value), key  # BatchNorm statistics included: no train-mode forward
    assert all(p.grad is None for p in model.parameters())
    verify_no_hooks(model)


def test_field_upsampling_places_units_at_their_receptive_field_centres() -> None:
    """LeNet-5's conv2 units are centred at input pixels 6.5 + 2 i (valid 5x5 convs, 2x2 pool): by hand."""
    from cnnlab.explain.kit.types import Context
    from cnnlab.explain.methods.cam import field_placed

    lenet = create_model("lenet5", num_classes=10)
    ctx = Context(lenet, lenet, 8, 10, "conv2", lenet.conv2)
    maps = torch.arange(100, dtype=torch.float32).view(1, 1, 10, 10)  # value = 10 row + column
    full = field_placed(ctx, maps, (32, 32), 1)[0, 0]
    # Pixel p sits at unit (p - 6.5) / 2: pixel 7 is a quarter of the way from unit 0 to unit 1.
    assert float(full[7, 7]) == pytest.approx(0.25 * 11)
    assert float(full[9, 7]) == pytest.approx(10 * 1.25 + 0.25)
    assert float(full[0, 0]) == 0.0 and float(full[31, 31]) == 99.0  # beyond the outer centres: the edge unit
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    placed = attribute(lenet, x, "eigencam", layer="conv2", upsample="field")
    torch.testing.assert_close(placed.maps, field_placed(ctx, placed.layer_maps, (32, 32), 1))
    assert placed.options["upsample"] == "field"
    verify_no_hooks(lenet)


def test_an_in_place_op_after_the_layer_does_not_change_its_captured_map() -> None:
    """conv -> BN -> SiLU(inplace) with the layer at BN, and `out += x` after it: HiResCAM equals a hook-free computation."""
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.bn = nn.BatchNorm2d(3)
            self.act = nn.SiLU(inplace=True)
            self.fc = nn.Linear(3, 4)

        def forward(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
            out = self.bn(self.conv(x))
            if keep is not None:
                keep.append(out)
                out = out.clone()
            out += x
            out = self.act(out)
            return self.fc(out.mean((2, 3)))

    torch.manual_seed(0)
    model = Block().eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    got = attribute(model, x, "hirescam", target=1, layer="bn")
    kept: list = []
    logits = model(x.requires_grad_(True), kept)
    grad = torch.autograd.grad(logits[:, 1].sum(), kept[0])[0]
    expected = (grad * kept[0]).sum(1).clamp(min=0)
    torch.testing.assert_close(got.layer_maps[:, 0], expected.detach(), rtol=1e-5, atol=1e-7)
    verify_no_hooks(model)
