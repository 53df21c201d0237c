"""The gradient family against computations it does not call: autograd, a hand Riemann sum, hand derivations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.explain import attribute, verify_no_hooks
from tests.explain.support import TwoLayer, seeded_resnet20, unchanged


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    return seeded_resnet20()


def _images(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _autograd(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    logits = model(x)
    return torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), x)[0]


def test_saliency_and_input_x_gradient_equal_autograd(resnet: nn.Module) -> None:
    x = _images()
    with unchanged(resnet):
        sal = attribute(resnet, x, "saliency")
        ixg = attribute(resnet, x, "input_x_gradient", target=3)
    assert torch.equal(sal.targets, resnet(x).argmax(1))
    grad = _autograd(resnet, x, sal.targets)
    torch.testing.assert_close(sal.maps, grad.abs(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(ixg.maps, x * _autograd(resnet, x, torch.full((3,), 3)), rtol=1e-5, atol=1e-7)
    assert sal.seconds > 0 and sal.method == "saliency" and sal.maps.device == x.device
    verify_no_hooks(resnet)


def test_integrated_gradients_equals_a_hand_riemann_sum(resnet: nn.Module) -> None:
    x = _images(2)
    steps = 16
    ig = attribute(resnet, x, "integrated_gradients", steps=steps, rule="right", max_batch=7)
    base = torch.zeros_like(x)
    total = torch.zeros_like(x)
    for k in range(1, steps + 1):  # right Riemann sum, one step at a time
        total += _autograd(resnet, base + k / steps * (x - base), ig.targets)
    torch.testing.assert_close(ig.maps, (x - base) * total / steps, rtol=1e-4, atol=1e-6)
    verify_no_hooks(resnet)


def _completeness(model: nn.Module, x: torch.Tensor, baseline: str, steps: int) -> torch.Tensor:
    """Return |sum(IG) - (f(x) - f(x'))| / |f(x) - f(x')| per image, for the class whose logit moves most."""
    from cnnlab.explain.kit.images import baseline_of

    base = baseline_of(x, baseline, {})
    with torch.no_grad():
        gaps = model(x) - model(base)
    targets = gaps.abs().argmax(1)  # completeness holds for every class; this one has the clearest gap
    ig = attribute(model, x, "integrated_gradients", targets, steps=steps, baseline=baseline)
    torch.testing.assert_close(ig.extras["baseline"], base)
    gap = gaps.gather(1, targets[:, None]).squeeze(1)
    return (ig.maps.flatten(1).sum(1) - gap).abs() / gap.abs()


@pytest.mark.slow
@pytest.mark.parametrize("baseline", ["black", "blur", "noise"])
def test_integrated_gradients_completeness_on_resnet18(baseline: str) -> None:
    """Sundararajan et al.'s completeness: the sum is f(x) - f(x') within 1 % with 64 Gauss-Legendre steps."""
    from cnnlab.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10).eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    error = _completeness(model, x, baseline, 64)
    # A noise baseline's path crosses far more ReLU kinks: measured 2.3 % and 3.7 % on these two images.
    assert error.max() < (0.05 if baseline == "noise" else 0.01), error
    verify_no_hooks(model)


def test_integrated_gradients_completeness_on_resnet20(resnet: nn.Module) -> None:
    error = _completeness(resnet, torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3)), "black", 64)
    assert error.max() < 0.01, error
    verify_no_hooks(resnet)


def test_smoothgrad_family_with_zero_noise_is_the_gradient(resnet: nn.Module) -> None:
    x = _images(2)
    grad = _autograd(resnet, x, resnet(x).argmax(1))
    plain = attribute(resnet, x, "smoothgrad", samples=3, noise=0.0)
    square = attribute(resnet, x, "smoothgrad_sq", samples=3, noise=0.0)
    var = attribute(resnet, x, "vargrad", samples=3, noise=0.0)
    torch.testing.assert_close(plain.maps, grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(square.maps, grad * grad, rtol=1e-5, atol=1e-9)
    assert var.maps.abs().max() < 1e-9
    verify_no_hooks(resnet)


def test_smoothgrad_is_the_mean_of_noisy_gradients_and_repeats() -> None:
    """On f = sum(w x^2)/2 the gradient is w x, so SmoothGrad's mean gradient is w (x + mean noise) exactly."""
    class Quadratic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.linspace(0.5, 1.5, 12).view(1, 3, 2, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            value = (self.w * x * x).flatten(1).sum(1) / 2
            return torch.stack([value, -value], 1)

    model = Quadratic()
    x = torch.randn(2, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    a = attribute(model, x, "smoothgrad", target=0, samples=50, noise=0.1, seed=4)
    b = attribute(model, x, "smoothgrad", target=0, samples=50, noise=0.1, seed=4, max_batch=3)
    torch.testing.assert_close(a.maps, b.maps)  # chunking changes nothing
    sigma = 0.1 * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    # The noise mean over 50 draws is small; its bound is 4 sigma / sqrt(50).
    assert ((a.maps - model.w * x).abs() <= model.w * 4 * sigma.view(-1, 1, 1, 1) / 50 ** 0.5).all()
    vg = attribute(model, x, "vargrad", target=0, samples=4000, noise=0.1, seed=1)
    # Var(w (x + e)) = w^2 sigma^2 for e ~ N(0, sigma^2).
    torch.testing.assert_close(vg.maps, (model.w * sigma.view(-1, 1, 1, 1)) ** 2, rtol=0.12, atol=1e-6)  # 5 sd of a 4000-draw variance
    verify_no_hooks(model)


def test_expected_gradients_on_a_linear_model_is_w_times_the_difference() -> None:
    w = torch.randn(2, 12, generator=torch.Generator().manual_seed(0))
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(w)
    x = torch.randn(3, 3, 2, 2)
    reference = torch.randn(1, 3, 2, 2)
    eg = attribute(model, x, "expected_gradients", target=1, samples=8, baselines=reference)
    torch.testing.assert_close(eg.maps, w[1].view(1, 3, 2, 2) * (x - reference), rtol=1e-5, atol=1e-6)
    many = torch.randn(5, 3, 2, 2)
    shap = attribute(model, x, "gradient_shap", target=1, samples=64, baselines=many, noise=0.0)
    # Averaged over references drawn at random: w (x - mean of the drawn references); bounded by the references' spread.
    assert (shap.maps - w[1].view(1, 3, 2, 2) * (x - many.mean(0))).abs().max() < 3 * float(w.abs().max() * many.std(0).max())
    verify_no_hooks(model)


W1 = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 1.0, 2.0]])
W2 = torch.tensor([[1.0, -3.0], [2.0, 1.0]])


def test_guided_backprop_and_deconvnet_by_hand() -> None:
    """f = W2 relu(W1 x); class 0. At x = (1, 1, 1): z = W1 x = (-0.5, 2) so only unit 1 is active."""
    model = TwoLayer(W1, W2)
    x = torch.ones(1, 3)
    with unchanged(model):
        guided = attribute(model, x.view(1, 3, 1, 1), "guided_backprop", target=0).maps.view(3)
        deconv = attribute(model, x.view(1, 3, 1, 1), "deconvnet", target=0).maps.view(3)
        plain = attribute(model, x.view(1, 3, 1, 1), "saliency", target=0).maps.view(3)
    # The hidden gradient is W2[0] = (1, -3).
    # Plain: mask (0, 1) -> (0, -3) -> W1^T (0, -3) = (3, -3, -6).
    # Guided: mask and positive part -> (0, 0) -> 0 everywhere.
    # Deconvnet: positive part only, no mask -> (1, 0) -> W1^T (1, 0) = (1, -2, 0.5).
    torch.testing.assert_close(plain, torch.tensor([3.0, 3.0, 6.0]))
    torch.testing.assert_close(guided, torch.zeros(3))
    torch.testing.assert_close(deconv, torch.tensor([1.0, -2.0, 0.5]))
    # Class 1: hidden gradient (2, 1); guided: mask (0, 1) -> (0, 1) -> W1^T (0, 1) = (-1, 1, 2).
    guided1 = attribute(model, x.view(1, 3, 1, 1), "guided_backprop", target=1).maps.view(3)
    torch.testing.assert_close(guided1, torch.tensor([-1.0, 1.0, 2.0]))


def test_deeplift_rescale_by_hand() -> None:
    """Rescale rule on one hidden layer: multiplier m_j = (relu(z_j) - relu(z0_j)) / (z_j - z0_j)."""
    pytest.importorskip("captum")
    model = TwoLayer(W1, W2)
    x = torch.tensor([[1.0, 1.0, 1.0]])
    base = torch.tensor([[0.5, -1.0, 0.0]])
    got = attribute(model, x.view(1, 3, 1, 1), "deeplift", target=0, baseline=base.view(1, 3, 1, 1)).maps.view(3)
    z, z0 = x @ W1.T, base @ W1.T
    m = (z.clamp(min=0) - z0.clamp(min=0)) / (z - z0)
    expected = (x - base) * ((W2[0] * m) @ W1)
    torch.testing.assert_close(got, expected.view(3), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        gap = model(x.view(1, 3, 1, 1))[0, 0] - model(base.view(1, 3, 1, 1))[0, 0]
    torch.testing.assert_close(got.sum(), gap)  # summation-to-delta
    verify_no_hooks(model)


def test_path_samples_share_forward_passes(resnet: nn.Module) -> None:
    """16 IG steps of 4 images in chunks of 64 rows: one gradient pass, not 64 (plus the logits' pass)."""
    calls = []
    handle = resnet.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        attribute(resnet, _images(4), "integrated_gradients", steps=16, max_batch=64)
    finally:
        handle.remove()
    assert calls == [4, 64], calls  # the logits (for the predicted class), then all 64 path points at once
    fresh = seeded_resnet20(3)
    calls.clear()
    handle = fresh.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:
        attribute(fresh, _images(4), "saliency", target=torch.arange(4))
        attribute(fresh, _images(4), "saliency", target=torch.arange(4))
    finally:
        handle.remove()
    # The memory probe of one image (once per model and input shape), then one gradient pass per call.
    assert calls == [1, 4, 4], calls
    verify_no_hooks(fresh)
    verify_no_hooks(resnet)
