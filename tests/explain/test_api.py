"""The interface: every method leaves the model unchanged with no hook; chunking; one-line errors; any model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain import attribute, hook_count, list_methods, verify_no_hooks
from cnnlab.explain.kit.memory import auto_max_batch, bytes_per_image
from tests.explain.support import seeded_resnet20, unchanged

FAST = {
    "smoothgrad": {"samples": 3}, "smoothgrad_sq": {"samples": 3}, "vargrad": {"samples": 3},
    "integrated_gradients": {"steps": 4}, "expected_gradients": {"samples": 3}, "gradient_shap": {"samples": 3},
    "rise": {"masks": 12}, "lime": {"samples": 16, "superpixels": "grid", "segments": 9},
    "kernel_shap": {"samples": 16, "superpixels": "grid", "segments": 9}, "occlusion": {"window": 16, "stride": 16},
}


@pytest.mark.parametrize("method", list_methods())
def test_every_method_leaves_the_model_as_it_came(method: str) -> None:
    """Train mode, mixed requires_grad, in-place ReLUs: all the same afterwards, parameters bit for bit, no hook."""
    model = seeded_resnet20()
    model.train()
    model.stem.conv.weight.requires_grad_(False) if hasattr(model, "stem") else None
    for module in model.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = True
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with unchanged(model):
        result = attribute(model, x, method, **FAST.get(method, {}))
    assert result.maps.shape[0] == 2 and result.maps.shape[-2:] == (32, 32)
    assert torch.isfinite(result.maps).all()
    assert result.maps.device == x.device and result.seconds > 0 and result.targets.dtype == torch.int64
    assert hook_count(model) == 0
    assert all(p.grad is None for p in model.parameters())


def test_chunk_size_does_not_change_the_maps() -> None:
    model = seeded_resnet20()
    x = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for method, options in [("integrated_gradients", {"steps": 6}), ("gradcam", {}), ("scorecam", {}), ("occlusion", {"window": 8, "stride": 8})]:
        whole = attribute(model, x, method, max_batch=512, **options)
        parts = attribute(model, x, method, max_batch=3, **options)
        # Float32 sums in other batch groupings: 1.9e-6 apart on an Intel Xeon's kernels, within 1e-6 on AMD.
        torch.testing.assert_close(whole.maps, parts.maps, rtol=1e-4, atol=1e-5)
        assert parts.options["max_batch"] == 3
    verify_no_hooks(model)


def test_memory_budget_counts_the_saved_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnlab.explain.kit.memory as core

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16 * 16, 2)).eval()
    x = torch.rand(1, 3, 16, 16)
    per_image = bytes_per_image(model, x)
    # Saved for backward: the conv's input (3*16*16) and output for ReLU (8*16*16), the linear input; all float32.
    assert per_image >= 4 * (3 * 16 * 16 + 8 * 16 * 16)
    # A quarter of the free memory, halved for backward's own allocations: the rows that fit.
    monkeypatch.setattr(core, "_free_bytes", lambda device: 80 * per_image)
    assert auto_max_batch(model, x) == 10
    monkeypatch.setattr(core, "_free_bytes", lambda device: 1)
    assert auto_max_batch(model, x) == 1
    verify_no_hooks(model)


def test_errors_name_the_fix() -> None:
    model = seeded_resnet20()
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(CnnlabError, match="close matches: stages.layer3"):
        attribute(model, x, "gradcam", layer="stages.layr3")
    with pytest.raises(CnnlabError, match=r"target 10 is out of range: the model has 10 classes \(0-9\)"):
        attribute(model, x, "saliency", target=10)
    with pytest.raises(CnnlabError, match="3 targets for 2 images"):
        attribute(model, x, "saliency", target=[1, 2, 3])
    with pytest.raises(CnnlabError, match="did you mean gradcam"):
        attribute(model, x, "gradcamm")
    with pytest.raises(CnnlabError, match="takes no option 'step'"):
        attribute(model, x, "integrated_gradients", step=3)
    with pytest.raises(CnnlabError, match="add a batch axis"):
        attribute(model, x[0], "saliency")
    from cnnlab.models import create_model

    lenet = create_model("lenet5", num_classes=10)
    with pytest.raises(CnnlabError, match=r"images of shape \(3, 32, 32\) do not fit LeNet5"):
        attribute(lenet, x, "saliency")
    with pytest.raises(CnnlabError, match="CAM needs"):
        attribute(lenet, torch.randn(1, 1, 32, 32), "cam", layer="conv2")
    for m in (model, lenet):
        verify_no_hooks(m)


def test_torchvision_and_timm_models_and_plain_modules() -> None:
    from cnnlab.models import create_model

    torch.manual_seed(0)
    tv = create_model("tv/resnet18", num_classes=5)
    x = torch.rand(1, 3, 64, 64)
    for method in ("gradcam", "integrated_gradients", "lrp"):
        with unchanged(tv):
            result = attribute(tv, x, method, **FAST.get(method, {}))
        assert result.maps.shape[-2:] == (64, 64)
    assert result.layer is None and attribute(tv, x, "gradcam").layer == tv.feature_layers()[-1]
    pytest.importorskip("timm")
    timm_model = create_model("timm/resnet10t", num_classes=5)
    with unchanged(timm_model):
        assert attribute(timm_model, x, "layercam").maps.shape == (1, 1, 64, 64)
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with unchanged(plain):
        assert attribute(plain, x, "gradcam", layer="0").layer_maps.shape == (1, 1, 62, 62)
        assert attribute(plain, x, "cam", layer="1").layer_maps.shape == (1, 1, 62, 62)


def test_deeplift_on_a_model_that_reuses_its_relu_says_what_to_use() -> None:
    pytest.importorskip("captum")
    from cnnlab.models import create_model

    model = create_model("tv/resnet18", num_classes=3)
    with pytest.raises(CnnlabError, match="use integrated_gradients or lrp"):
        attribute(model, torch.rand(1, 3, 32, 32), "deeplift")
    verify_no_hooks(model)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_every_method_keeps_its_maps_on_the_gpu() -> None:
    model = seeded_resnet20().cuda()
    x = torch.randn(2, 3, 32, 32)  # on the host: attribute moves them to the model
    for method in list_methods():
        result = attribute(model, x, method, **FAST.get(method, {}))
        assert result.maps.is_cuda and result.targets.is_cuda, method
    verify_no_hooks(model)


@pytest.mark.slow
def test_every_zoo_classifier_explains_and_dense_models_are_refused() -> None:
    """Grad-CAM at the default layer and saliency, on every zoo model at its smallest evaluation size."""
    from cnnlab.models import create_model, is_detector, list_models, model_info

    for name in list_models():
        info = model_info(name)
        size = max(info.min_eval_size, 32)
        model = create_model(name, num_classes=4)
        x = torch.rand(1, info.input_size[0], size, size)
        if is_detector(name):
            x = torch.rand(1, *info.input_size)
            with pytest.raises(CnnlabError, match="detector's boxes are explained one at a time"):
                attribute(model, x, "saliency")
        elif info.family == "unet" or name == "pointwise":
            with pytest.raises(CnnlabError, match="not \\(N, classes\\) logits"):
                attribute(model, x, "saliency")
        else:
            assert attribute(model, x, "gradcam").maps.shape[-2:] == (size, size), name
            assert torch.isfinite(attribute(model, x, "saliency").maps).all(), name
        verify_no_hooks(model)
