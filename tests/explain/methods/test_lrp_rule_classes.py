"""LRP's rule classes against the papers' formulas by hand, composites as maps from layers to rules, user rules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain import PixelModel, attribute
from cnnlab.explain.methods.lrp import (
    AlphaBeta,
    Composite,
    Epsilon,
    Flat,
    Gamma,
    Norm,
    Op,
    Rule,
    WSquare,
    ZBox,
    composite,
    rule,
    vjp,
)
from tests.explain.support import unchanged


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _stab(z: torch.Tensor, eps: float) -> torch.Tensor:
    """z + eps sign(z), zero counting as positive: the denominators of every rule."""
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z)


def _linear_case(signed: bool = True) -> tuple[Op, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (op, x, W, b, R_out, M) for one fully connected layer of 5 inputs and 4 outputs, M = W."""
    g = _generator(0)
    x = torch.randn(1, 5, generator=g, dtype=torch.float64)
    x = x if signed else x.abs()
    w = torch.randn(4, 5, generator=g, dtype=torch.float64)
    b = 0.3 * torch.randn(4, generator=g, dtype=torch.float64)
    r = torch.randn(1, 4, generator=g, dtype=torch.float64)
    return (lambda t, weight: F.linear(t, weight)), x, w, b, r, w


def _conv_case() -> tuple[Op, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (op, x, W, b, R_out, M) for a zero-padded 3x3 conv, M its matrix (out units x in units)."""
    g = _generator(1)
    x = torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64)
    w = torch.randn(3, 2, 3, 3, generator=g, dtype=torch.float64)
    b = 0.3 * torch.randn(3, generator=g, dtype=torch.float64)
    r = torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64)

    def op(t: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        assert weight is not None
        return F.conv2d(t, weight, padding=1)

    basis = torch.eye(x.numel(), dtype=torch.float64).view(-1, *x.shape[1:])
    matrix = op(basis, w).flatten(1).T  # column i: the outputs of the unit input i
    return op, x, w, b.view(1, -1, 1, 1), r, matrix


def _bias_per_unit(b: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    return b.expand_as(r).flatten()


CASES = {"linear": _linear_case, "conv": _conv_case}


@pytest.mark.parametrize("case", CASES)
def test_epsilon_rule_by_hand(case: str) -> None:
    """R_i = sum_j x_i w_ij / (z_j + eps sign z_j) R_j (Bach et al. 2015, Eq. 58)."""
    op, x, w, b, r, m = CASES[case]()
    eps = 0.1
    contributions = m * x.flatten()[None, :]  # z_ij, out x in
    z = contributions.sum(1) + _bias_per_unit(b, r)
    expected = (contributions / _stab(z, eps)[:, None] * r.flatten()[:, None]).sum(0)
    got = Epsilon(eps).propagate(op, x, w, b, r)
    torch.testing.assert_close(got.flatten(), expected)


@pytest.mark.parametrize("case", CASES)
def test_alpha2_beta1_rule_by_hand(case: str) -> None:
    """R_i = sum_j (2 z+_ij / z+_j - 1 z-_ij / z-_j) R_j, each sum with its own sign of the bias (Bach et al. 2015, Eq. 60)."""
    op, x, w, b, r, m = CASES[case]()
    eps = 1e-6
    contributions = m * x.flatten()[None, :]
    bias = _bias_per_unit(b, r)
    zp = contributions.clamp(min=0).sum(1) + bias.clamp(min=0)
    zn = contributions.clamp(max=0).sum(1) + bias.clamp(max=0)
    share = 2 * contributions.clamp(min=0) / _stab(zp, eps)[:, None] - contributions.clamp(max=0) / _stab(zn, eps)[:, None]
    expected = (share * r.flatten()[:, None]).sum(0)
    torch.testing.assert_close(AlphaBeta(2.0, 1.0).propagate(op, x, w, b, r).flatten(), expected)
    assert rule("alpha2_beta1") == AlphaBeta(2.0, 1.0) and rule("zplus") == AlphaBeta(1.0, 0.0) == rule("alpha1_beta0")


def test_gamma_rule_by_hand() -> None:
    """Non-negative inputs: R_i = sum_j x_i (w_ij + g w+_ij) / sum_i (...) R_j (Montavon et al. 2019), mirrored where z_j < 0."""
    op, x, w, b, r, m = _linear_case(signed=False)
    g, eps = 0.5, 1e-6
    z = m @ x.flatten() + b
    assert (z > 0).any() and (z < 0).any()
    favoured = torch.where((z > 0)[:, None], m + g * m.clamp(min=0), m + g * m.clamp(max=0))
    bias = torch.where(z > 0, b + g * b.clamp(min=0), b + g * b.clamp(max=0))
    contributions = favoured * x.flatten()[None, :]
    expected = (contributions / _stab(contributions.sum(1) + bias, eps)[:, None] * r.flatten()[:, None]).sum(0)
    torch.testing.assert_close(Gamma(g).propagate(op, x, w, b, r).flatten(), expected)


@pytest.mark.parametrize("case", CASES)
def test_flat_and_wsquare_rules_by_hand(case: str) -> None:
    """flat: R_i = sum_j 1 / |receptive field of j| R_j; w^2: R_i = sum_j w_ij^2 / sum_i w_ij^2 R_j (bias-free)."""
    op, x, w, _, r, m = CASES[case]()
    eps = 1e-6
    connected = (m != 0).to(m)
    flat = (connected / _stab(connected.sum(1), eps)[:, None] * r.flatten()[:, None]).sum(0)
    torch.testing.assert_close(Flat().propagate(op, x, w, None, r).flatten(), flat)
    squared = m * m
    wsquare = (squared / _stab(squared.sum(1), eps)[:, None] * r.flatten()[:, None]).sum(0)
    torch.testing.assert_close(WSquare().propagate(op, x, w, None, r).flatten(), wsquare)


@pytest.mark.parametrize("case", CASES)
def test_zbox_rule_by_hand(case: str) -> None:
    """R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) / sum_i (...) R_j (Montavon et al. 2017, z^B); the bias cancels."""
    op, x, w, b, r, m = CASES[case]()
    low, high, eps = -1.5, 2.0, 1e-6
    contributions = m * x.flatten()[None, :] - low * m.clamp(min=0) - high * m.clamp(max=0)
    expected = (contributions / _stab(contributions.sum(1), eps)[:, None] * r.flatten()[:, None]).sum(0)
    torch.testing.assert_close(ZBox(low, high).propagate(op, x, w, b, r).flatten(), expected)


def test_norm_rule_splits_an_average_pool_by_its_terms() -> None:
    x = torch.rand(1, 1, 4, 4, generator=_generator(2), dtype=torch.float64) + 0.1
    r = torch.randn(1, 1, 2, 2, generator=_generator(3), dtype=torch.float64)
    eps = 1e-6
    got = Norm(eps).propagate(lambda t, weight: F.avg_pool2d(t, 2), x, None, None, r)
    blocks = x.view(2, 2, 2, 2).transpose(1, 2)  # (block row, block column, 2, 2)
    expected = blocks / 4 / _stab(blocks.mean((2, 3), keepdim=True), eps) * r.view(2, 2, 1, 1)
    torch.testing.assert_close(got.view(2, 2, 2, 2).transpose(1, 2), expected)


@dataclass(frozen=True)
class PlainZ(Rule):
    """LRP-0 (Bach et al. 2015), written as a user would: R_i = sum_j x_i w_ij / z_j R_j."""

    name = "lrp0"

    def propagate(self, op: Op, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  relevance: torch.Tensor) -> torch.Tensor:
        z = op(x, weight) if bias is None else op(x, weight) + bias
        return x * vjp(op, x, weight, relevance / z)


class Doubled(Epsilon):
    """The epsilon rule times two: a subclass of a library rule, reporting its class name."""

    def propagate(self, op: Op, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  relevance: torch.Tensor) -> torch.Tensor:
        return 2 * super().propagate(op, x, weight, bias, relevance)


def _relu_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(6, 8, 3, bias=False), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 8, bias=False), nn.ReLU(),
                          nn.Linear(8, 4, bias=False))
    return model.double().eval()


def test_a_user_rule_in_a_composite_object_is_used() -> None:
    """LRP-0 everywhere (sums and pools too) equals gradient x input on a bias-free ReLU net; a subclass doubles."""
    model = _relu_net()
    x = torch.rand(2, 3, 8, 8, generator=_generator(4), dtype=torch.float64)
    everywhere = Composite(PlainZ(), PlainZ(), PlainZ(), norm=PlainZ(), affine=PlainZ(), name="lrp0")
    with unchanged(model):
        ours = attribute(model, x, "lrp", composite=everywhere)
    plain = attribute(model, x, "input_x_gradient", target=ours.targets)
    torch.testing.assert_close(ours.maps, plain.maps)
    assert {k: ours.options[k] for k in ("composite", "first", "conv", "linear")} == {
        "composite": "lrp0", "first": "lrp0", "conv": "lrp0", "linear": "lrp0"}

    doubled = attribute(model, x, "lrp", composite=Composite(Doubled(), Epsilon(), Epsilon()))
    single = attribute(model, x, "lrp", composite="epsilon")
    assert torch.equal(doubled.maps, 2 * single.maps)
    assert (doubled.options["composite"], doubled.options["first"], doubled.options["conv"]) == ("custom", "Doubled", "epsilon")


def test_epsilon_rule_conserves_relevance_on_a_bias_free_relu_net() -> None:
    model = _relu_net(1)
    x = torch.rand(3, 3, 8, 8, generator=_generator(5), dtype=torch.float64)
    result = attribute(model, x, "lrp", composite=Composite(Epsilon(1e-12), Epsilon(1e-12), Epsilon(1e-12), norm=Norm(1e-12)),
                       record=True)
    logits = result.extras["logits"].gather(1, result.targets[:, None]).squeeze(1)
    torch.testing.assert_close(result.maps.flatten(1).sum(1), logits, rtol=1e-9, atol=1e-12)
    for label, out_sum, in_sum in result.extras["conservation"]:
        torch.testing.assert_close(in_sum, out_sum, rtol=1e-9, atol=1e-12, msg=label)


def test_a_composite_maps_layer_kinds_to_rules() -> None:
    rules = composite("epsilon_gamma_box", linear="alpha2_beta1", gamma=0.5, low=-1.0, high=2.0, stabilizer=1e-3)
    assert rules.rule_for("conv", first=True) == rules.rule_for("linear", first=True) == rules.first
    assert isinstance(rules.first, ZBox) and (rules.first.low, rules.first.high, rules.first.stabilizer) == (-1.0, 2.0, 1e-3)
    assert rules.rule_for("conv") == Gamma(0.5, 1e-3) and rules.rule_for("linear") == AlphaBeta(2.0, 1.0, 1e-3)
    assert rules.rule_for("norm", first=True) == Norm(1e-3) and rules.rule_for("affine") == Epsilon(1e-6)
    assert rules.name == "epsilon_gamma_box"
    with pytest.raises(CnnlabError, match="unknown LRP layer kind 'pool'"):
        rules.rule_for("pool")  # type: ignore[arg-type]
    with pytest.raises(CnnlabError, match="unknown LRP rule 'zminus'"):
        rule("zminus")
    with pytest.raises(TypeError):
        Rule()  # type: ignore[abstract]


def test_composite_objects_next_to_names_and_parameters() -> None:
    """A name and its Composite give the same maps (z^B bounds in pixels on a PixelModel); first= replaces a rule."""
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    pixel = PixelModel(inner, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)).eval()
    x = torch.rand(2, 3, 8, 8, generator=_generator(6))
    named = attribute(pixel, x, "lrp", composite="epsilon_gamma_box")
    built = attribute(pixel, x, "lrp", composite=Composite(ZBox(), Gamma(), Epsilon(), name="box"))
    assert torch.equal(named.maps, built.maps) and built.options["first"] == "zbox"
    flat = attribute(pixel, x, "lrp", composite=Composite(ZBox(), Gamma(), Epsilon()), first="flat", conv="zplus")
    assert torch.equal(flat.maps, attribute(pixel, x, "lrp", composite="epsilon_plus_flat").maps)
    assert (flat.options["first"], flat.options["conv"]) == ("flat", "alpha_beta")
    with pytest.raises(CnnlabError, match="'epsilon' sets no rule of a Composite object"):
        attribute(pixel, x, "lrp", composite=Composite(ZBox(), Gamma(), Epsilon()), epsilon=0.1)
