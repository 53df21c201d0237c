"""The generic noise tunnel: `smooth(method)` and `TUNNEL:METHOD` names, checked against draws made by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain import attribute, smooth
from cnnlab.explain.api import check_pairs, method_options, resolve
from cnnlab.explain.kit.types import Context, Result
from tests.explain.support import TwoLayer, unchanged


class Linear(nn.Module):
    """f(x) = W flatten(x): its gradient is W's row and Integrated Gradients from black is x * W's row, exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 2, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.linspace(-1.0, 1.5, 24).view(2, 12))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def _hand_noise(x: torch.Tensor, samples: int, noise: float, seed: int) -> torch.Tensor:
    """Return the noised copies (N, S, C, H, W) as the tunnel documents them: one seeded stream per image."""
    sigma = noise * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    copies = []
    for image in range(len(x)):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + image)
        draws = torch.randn((samples, *x.shape[1:]), generator=generator)
        copies.append(x[image] + sigma[image] * draws)
    return torch.stack(copies)


@pytest.fixture
def setup() -> tuple[Linear, torch.Tensor]:
    return Linear(), torch.randn(3, 3, 2, 2, generator=torch.Generator().manual_seed(0))


def test_smoothgrad_over_integrated_gradients_is_the_mean_of_x_times_w_over_the_copies(setup) -> None:
    model, x = setup
    w = model.fc.weight[1].view(3, 2, 2)
    with unchanged(model):
        got = attribute(model, x, "smoothgrad:integrated_gradients", target=1, samples=7, noise=0.2, seed=3, steps=4)
    expected = (_hand_noise(x, 7, 0.2, 3) * w).mean(1)
    torch.testing.assert_close(got.maps, expected, rtol=1e-5, atol=1e-6)
    assert got.options["samples"] == 7 and got.options["steps"] == 4 and not got.absolute


def test_vargrad_and_square_over_input_x_gradient_are_the_variance_and_mean_square(setup) -> None:
    model, x = setup
    w = model.fc.weight[0].view(3, 2, 2)
    copies = _hand_noise(x, 9, 0.3, 0) * w
    var = attribute(model, x, "vargrad:input_x_gradient", target=0, samples=9, noise=0.3)
    square = attribute(model, x, "smoothgrad_sq:input_x_gradient", target=0, samples=9, noise=0.3)
    torch.testing.assert_close(var.maps, copies.var(1, unbiased=False), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(square.maps, (copies * copies).mean(1), rtol=1e-5, atol=1e-6)
    assert var.absolute and square.absolute


def test_the_tunnel_does_not_depend_on_the_chunk_size(setup) -> None:
    _, x = setup
    generator = torch.Generator().manual_seed(1)
    model = TwoLayer(torch.randn(5, 12, generator=generator), torch.randn(2, 5, generator=generator))
    a = attribute(model, x, "smoothgrad:guided_backprop", target=1, samples=5, max_batch=2)
    b = attribute(model, x, "smoothgrad:guided_backprop", target=1, samples=5, max_batch=64)
    torch.testing.assert_close(a.maps, b.maps)


def test_smoothgrad_is_the_tunnel_over_the_signed_gradient(setup) -> None:
    model, x = setup
    w = model.fc.weight[1].view(3, 2, 2)
    got = attribute(model, x, "smoothgrad", target=1, samples=4)
    torch.testing.assert_close(got.maps, w.expand_as(x))  # a linear model's gradient is the same at every copy


def test_smooth_wraps_a_users_own_method() -> None:
    calls = []

    def doubled(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: object) -> Result:
        calls.append(len(images))
        return Result(2 * images, {"scale": 2})

    ctx = Context(nn.Identity(), lambda t: t.flatten(1), max_batch=4, num_classes=2)
    x = torch.ones(2, 1, 1, 1)
    result = smooth(doubled, "mean")(ctx, x, torch.zeros(2, dtype=torch.long), samples=3, noise=0.0)
    assert calls == [4, 2]  # six copies, four rows at a time
    torch.testing.assert_close(result.maps, 2 * x)
    assert result.options == {"scale": 2, "samples": 3, "noise": 0.0, "seed": 0}


@pytest.mark.parametrize("name, words", [
    ("smoothgrad:expected_gradients", "draws no noise of its own"),
    ("vargrad:gradcam", "draws no noise of its own"),
    ("vargrad:smoothgrad", "draws no noise of its own"),
    ("blur:saliency", "unknown explanation method"),
])
def test_a_tunnel_over_what_it_cannot_wrap_is_one_line(setup, name: str, words: str) -> None:
    model, x = setup
    with pytest.raises(CnnlabError, match=words):
        attribute(model, x, name)


def test_a_tunnels_options_are_the_tunnels_and_the_methods_typed() -> None:
    assert method_options("smoothgrad:integrated_gradients", {"steps": "8", "samples": 4, "noise": "1e-1"}, seed=2) == {
        "steps": 8, "samples": 4, "noise": 0.1, "seed": 2}
    with pytest.raises(CnnlabError, match="samples"):
        method_options("smoothgrad:integrated_gradients", {"samples": 0})
    with pytest.raises(CnnlabError, match="window"):
        check_pairs(["smoothgrad:saliency"], {"window": 3})
    assert resolve("smoothgrad:saliency").absolute  # the mean of magnitudes is a magnitude


def test_the_command_line_takes_a_tunnel_name_and_refuses_a_bad_one() -> None:
    import argparse

    from cnnlab.cli.options import METHODS

    assert METHODS("gradcam,smoothgrad:integrated_gradients") == ("gradcam", "smoothgrad:integrated_gradients")
    with pytest.raises(argparse.ArgumentTypeError, match="draws no noise"):
        METHODS("smoothgrad:rise")
