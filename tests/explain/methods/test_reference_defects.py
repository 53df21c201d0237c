"""Defects found against reference libraries: grey superpixels (scikit-image), float64 perturbation
scores (Captum's Occlusion), and colour bars anchored at zero."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.explain import attribute
from cnnlab.explain.kit.noise import seeded
from cnnlab.explain.methods.perturbation import rise_masks
from cnnlab.explain.methods.superpixels import superpixels
from tests.explain.support import unchanged

SIDE = 16


def grey_images() -> torch.Tensor:
    """Return two smooth grey images (2, 1, 16, 16) spanning exactly [0, 1]: a few clear regions for SLIC."""
    coarse = torch.rand(2, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    x = nn.functional.interpolate(coarse, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    low, high = x.amin(dim=(1, 2, 3), keepdim=True), x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - low) / (high - low)


def slic_reference(image: np.ndarray, segments: int, channel_axis: int | None) -> np.ndarray:
    """Return scikit-image's SLIC labels for one image scaled to [0, 1] as cnnlab scales it, called directly."""
    from skimage.segmentation import slic

    scaled = (image - image.min()) / (image.max() - image.min() + 1e-12)
    labels = slic(scaled, n_segments=segments, compactness=10.0, start_label=0, channel_axis=channel_axis)
    return np.unique(labels, return_inverse=True)[1].reshape(labels.shape)  # consecutive from 0, as cnnlab's


def test_superpixels_of_grey_and_colour_images_are_scikit_images_slic_on_2d_arrays() -> None:
    pytest.importorskip("skimage")
    grey = grey_images()
    labels = superpixels(grey, "slic", segments=6)
    assert labels.shape == (2, SIDE, SIDE) and labels.dtype == torch.int64
    for n in range(2):
        reference = slic_reference(grey[n, 0].numpy(), 6, channel_axis=None)  # the 2-D grey array
        assert reference.ndim == 2 and reference.max() >= 2
        np.testing.assert_array_equal(labels[n].numpy(), reference)
    colour = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    colour = nn.functional.interpolate(colour, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
    labels = superpixels(colour, "slic", segments=6)
    assert labels.shape == (2, SIDE, SIDE)
    for n in range(2):
        np.testing.assert_array_equal(labels[n].numpy(), slic_reference(colour[n].permute(1, 2, 0).numpy(), 6, -1))


def test_lime_and_kernel_shap_on_grey_images_give_the_linear_models_shapley_values() -> None:
    # For an affine model f(x) = w.x + b with the image's mean as fill, keeping superpixel j adds
    # phi_j = sum over its pixels of w (x - mean): KernelSHAP's exact values and LIME's unregularised fit.
    pytest.importorskip("skimage")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 3)).double().eval()
    x = grey_images().double()
    target = torch.tensor([2, 0])
    with unchanged(model):
        shap = attribute(model, x, "kernel_shap", target=target, segments=6, samples=4096)
        lime = attribute(model, x, "lime", target=target, segments=6, samples=400, ridge=0.0, seed=3)
    for result in (shap, lime):
        assert result.maps.shape == (2, 1, SIDE, SIDE)
        np.testing.assert_array_equal(result.extras["segments"].numpy(), superpixels(x, "slic", segments=6).numpy())
    weights = model[1].weight.detach()[target].view(2, 1, SIDE, SIDE)
    per_pixel = weights * (x - x.mean(dim=(2, 3), keepdim=True))
    labels = shap.extras["segments"]
    for n in range(2):
        phi = torch.zeros(int(labels[n].max()) + 1, dtype=torch.float64).index_add_(0, labels[n].flatten(), per_pixel[n, 0].flatten())
        assert len(phi) >= 3
        torch.testing.assert_close(shap.extras["weights"][n, :len(phi)], phi, rtol=0, atol=1e-9)
        torch.testing.assert_close(lime.extras["weights"][n, :len(phi)], phi, rtol=0, atol=1e-9)
        torch.testing.assert_close(shap.maps[n, 0], phi[labels[n]], rtol=0, atol=1e-9)


def offset_model(offset: float = 1e8) -> nn.Module:
    """Return a float64 conv net whose logits are `offset` plus terms ~1e-4 apart: below float32's step at 1e8 (8).

    Dyadic weights and inputs make every logit of the dyadic images exact in float64.
    """
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 64, 4))
    model = model.double().eval()
    with torch.no_grad():
        model[0].weight.copy_(torch.randint(-8, 9, model[0].weight.shape, generator=g) / 1024)
        model[3].weight.copy_(torch.randint(-8, 9, model[3].weight.shape, generator=g) / 1024)
        model[3].bias.fill_(offset)
    return model


def dyadic_images() -> torch.Tensor:
    return torch.randint(0, 17, (2, 1, 8, 8), generator=torch.Generator().manual_seed(1)).double() / 16


def test_occlusion_of_a_float64_model_equals_captum_below_float32_resolution() -> None:
    captum = pytest.importorskip("captum.attr")
    model, x, target = offset_model(), dyadic_images(), torch.tensor([1, 2])
    assert torch.equal(model(x).float(), torch.full((2, 4), 1e8))  # float32 cannot tell the logits apart
    for window, stride in [(2, 2), (3, 1)]:  # grids Captum and cnnlab share: no window flush with the edge
        with unchanged(model):
            ours = attribute(model, x, "occlusion", target=target, window=window, stride=stride, fill=0.0)
        theirs = captum.Occlusion(model).attribute(x, sliding_window_shapes=(1, window, window),
                                                   strides=(1, stride, stride), baselines=0.0, target=target)
        assert ours.maps.dtype == torch.float64
        assert ours.maps.abs().max() > 1e-4  # float32 scores made this map all zeros
        # Captum divides by the window counts in float32 (`.float()`), hence 1e-9 and not equality.
        torch.testing.assert_close(ours.maps, theirs.double(), rtol=0, atol=1e-9)


@pytest.mark.parametrize("method, options", [
    ("occlusion", {"window": 2, "stride": 2}),
    ("rise", {"masks": 16, "cells": 2}),
    ("lime", {"samples": 32, "segments": 4, "superpixels": "grid"}),
    ("kernel_shap", {"samples": 32, "segments": 4, "superpixels": "grid"}),
    ("scorecam", {}),
])
def test_perturbation_methods_keep_a_float64_models_dtype(method: str, options: dict) -> None:
    model, x, target = offset_model(), dyadic_images(), torch.tensor([1, 2])
    with unchanged(model):
        result = attribute(model, x, method, target=target, max_batch=7, **options)
    assert result.maps.dtype == torch.float64
    assert result.maps.shape == (2, 1, 8, 8)
    if method in ("lime", "kernel_shap"):
        # Scores that differ by ~1e-4 on top of 1e8 give non-zero superpixel weights; float32 gave all zeros.
        assert result.extras["weights"].abs().max() > 1e-5


def test_rise_of_a_float64_model_equals_its_formula_in_float64() -> None:
    # RISE scores are probabilities: float32 storage alone put its map 1.5e-9 off the float64 formula.
    model, x, target = offset_model(offset=0.0), dyadic_images(), torch.tensor([1, 2])
    with unchanged(model):
        result = attribute(model, x, "rise", target=target, masks=16, cells=2, p=0.5, max_batch=7)
    masks = rise_masks(16, 2, 0.5, (8, 8), seeded(None, x.device)).double()  # (M, H, W), the default seed
    with torch.no_grad():
        probabilities = torch.stack([model(x[n] * masks[:, None]).softmax(1)[:, target[n]] for n in range(2)])  # (N, M)
    expected = torch.einsum("nm,mhw->nhw", probabilities, masks) / (16 * 0.5)
    torch.testing.assert_close(result.maps[:, 0], expected, rtol=0, atol=1e-12)


def test_scorecam_of_a_float64_model_weighs_channels_by_float64_scores() -> None:
    # Channel scores 1e8 + ~1e-4: in float32 they were all 1e8 and the weights uniform (1.3e-7 off here).
    model, x, target = offset_model(), dyadic_images(), torch.tensor([1, 2])
    with unchanged(model):
        result = attribute(model, x, "scorecam", target=target, layer="0", max_batch=7)
    with torch.no_grad():
        acts = model[0](x)  # (N, K, 8, 8): the layer's grid is the input's, so its masks need no resizing
        expected = []
        for n in range(2):
            low = acts[n].amin(dim=(1, 2), keepdim=True)
            high = acts[n].amax(dim=(1, 2), keepdim=True)
            masks = (acts[n] - low) / (high - low + 1e-8)  # (K, 8, 8), as Wang et al. normalise them
            scores = model(x[n] * masks[:, None])[:, target[n]]  # (K,)
            expected.append((scores.softmax(0)[:, None, None] * acts[n]).sum(0).clamp(min=0))
        uniform = acts.mean(1).clamp(min=0)
    expected = torch.stack(expected)
    assert (expected - uniform).abs().max() > 1e-8
    torch.testing.assert_close(result.layer_maps[:, 0], expected, rtol=0, atol=1e-10)


def test_kernel_shap_of_a_float64_model_adds_up_to_the_score_difference() -> None:
    # Shapley efficiency: the values sum to f(x) - f(fill), here a difference of ~1e-4 on top of 1e8.
    model, x, target = offset_model(), dyadic_images(), torch.tensor([1, 2])
    with unchanged(model):
        result = attribute(model, x, "kernel_shap", target=target, samples=64, segments=4, superpixels="grid", fill=0.0)
    with torch.no_grad():
        expected = model(x).gather(1, target[:, None])[:, 0] - model(torch.zeros_like(x)).gather(1, target[:, None])[:, 0]
    assert expected.abs().min() > 1e-5
    torch.testing.assert_close(result.extras["weights"].sum(1), expected, rtol=0, atol=1e-9)


# --- colour bars ---------------------------------------------------------------------------------


def bump(peak: float, floor: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    return floor + (peak - floor) * torch.exp(-((yy - 12) ** 2 + (xx - 20) ** 2) / 30)


def test_colour_limits_keep_zero_at_one_end_or_the_middle() -> None:
    from cnnlab.explain.pictures.render import colour_limits

    flat, sharp = bump(1.82, 1.66), bump(1.82, 0.0)
    assert colour_limits(flat) == ("jet", 0.0, pytest.approx(1.82))  # not (1.66, 1.82)
    assert colour_limits(sharp) == ("jet", 0.0, pytest.approx(1.82))
    signed = sharp - 1.0
    assert colour_limits(signed) == ("bwr", pytest.approx(-1.0), pytest.approx(1.0))
    assert colour_limits(-flat) == ("bwr", pytest.approx(-1.82), pytest.approx(1.82))
    assert colour_limits(torch.zeros(4, 4))[1:] == (0.0, 1e-12)


def test_overlay_colour_bar_of_a_flat_map_starts_at_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from cnnlab.explain.pictures.render import overlay

    limits: list[tuple[float, float]] = []
    colorbar = Figure.colorbar

    def record(self: Figure, mappable, *args, **kwargs):  # the limits the bar is actually drawn with
        limits.append((mappable.norm.vmin, mappable.norm.vmax))
        return colorbar(self, mappable, *args, **kwargs)

    monkeypatch.setattr(Figure, "colorbar", record)
    image = torch.full((3, 32, 32), 0.5)
    for name, heat in (("flat", bump(1.82, 1.66)), ("sharp", bump(1.82, 0.0))):
        path = overlay(image, heat, tmp_path / f"{name}.png", name)
        assert path.stat().st_size > 0
    (flat_low, flat_high), (sharp_low, sharp_high) = limits
    assert flat_low <= 0.0 <= flat_high and flat_low == 0.0
    assert flat_high == pytest.approx(1.82) and (sharp_low, sharp_high) == (0.0, pytest.approx(1.82))
