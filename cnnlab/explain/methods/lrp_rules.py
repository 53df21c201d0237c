"""LRP's rules and composites (Bach et al. 2015; Montavon et al. 2017, 2019): each rule maps a
linear op's input, weights, bias and output relevance to the input's relevance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from cnnlab.errors import CnnlabError

Op = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]  # linear in x: op(x, weight), no bias


def stabilize(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Return z pushed away from zero by epsilon in its own sign (zero counts as positive)."""
    return z + ((z == 0).to(z) + z.sign()) * epsilon


def _jt(op: Op, like: torch.Tensor, weight: torch.Tensor | None, s: torch.Tensor) -> torch.Tensor:
    """Return J^T s for the linear map x -> op(x, weight) (its value does not depend on x)."""
    x = torch.zeros_like(like).requires_grad_(True)
    (grad,) = torch.autograd.grad(op(x, weight), x, s)
    return grad


def _pos(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clamp(min=0)


def _neg(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clamp(max=0)


def _z(op: Op, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | float | None) -> torch.Tensor:
    out = op(x, weight)
    return out if bias is None else out + bias


# --- the rules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One LRP rule: maps (op, x, weight, bias, R_out) to R_in."""

    name: str
    epsilon: float = 1e-6  # the epsilon rule's epsilon, or the stabiliser of the others
    gamma: float = 0.25
    alpha: float = 1.0
    beta: float = 0.0
    low: float | torch.Tensor = 0.0  # z^B: the lowest and highest input values
    high: float | torch.Tensor = 1.0

    def __call__(self, op: Op, x: torch.Tensor, w: torch.Tensor | None, b: torch.Tensor | None, r: torch.Tensor) -> torch.Tensor:
        """Return the relevance of the op's input."""
        eps = self.epsilon
        if self.name in ("epsilon", "norm"):
            # Bach et al. 2015, Eq. 58 (LRP-epsilon); `norm` is the same for weight-free ops.
            return x * _jt(op, x, w, r / stabilize(_z(op, x, w, b), eps))
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        if self.name == "alpha_beta":
            # Bach et al. 2015, Eq. 60: positive and negative contributions normalised apart.
            zp = _z(op, xp, _pos(w), _pos(b)) + op(xn, _neg(w))
            zn = _z(op, xp, _neg(w), _neg(b)) + op(xn, _pos(w))
            sp, sn = r / stabilize(zp, eps), r / stabilize(zn, eps)
            positive = xp * _jt(op, x, _pos(w), sp) + xn * _jt(op, x, _neg(w), sp)
            negative = xp * _jt(op, x, _neg(w), sn) + xn * _jt(op, x, _pos(w), sn)
            return self.alpha * positive - (self.beta * negative if self.beta else 0.0)
        if self.name == "gamma":
            # Montavon et al. 2019, Eq. (gamma), in the form that also admits negative inputs
            # (Andeol et al. 2021): positive outputs favour positive contributions and vice versa.
            g = self.gamma
            assert w is not None
            wp, wn = w + g * w.clamp(min=0), w + g * w.clamp(max=0)
            bp = None if b is None else b + g * b.clamp(min=0)
            bn = None if b is None else b + g * b.clamp(max=0)
            z = _z(op, x, w, b)
            sp = (z > 0).to(r) * r / stabilize(_z(op, xp, wp, bp) + op(xn, wn), eps)
            sn = (z < 0).to(r) * r / stabilize(_z(op, xp, wn, bn) + op(xn, wp), eps)
            return (xp * _jt(op, x, wp, sp) + xn * _jt(op, x, wn, sp)
                    + xp * _jt(op, x, wn, sn) + xn * _jt(op, x, wp, sn))
        if self.name in ("flat", "wsquare"):
            # Lapuschkin et al. 2019 (flat), Montavon et al. 2017 (w^2): relevance spread by the
            # weights alone (flat: all ones), independent of the input.
            ones = torch.ones_like(x)
            if self.name == "flat":
                weight, bias = (None if w is None else torch.ones_like(w)), None
            else:
                weight, bias = (None if w is None else w * w), (None if b is None else b * b)
            return _jt(op, x, weight, r / stabilize(_z(op, ones, weight, bias), eps))
        if self.name == "zbox":
            # Montavon et al. 2017, z^B: for inputs bounded in [low, high].
            low = torch.as_tensor(self.low, dtype=x.dtype, device=x.device).expand_as(x)
            high = torch.as_tensor(self.high, dtype=x.dtype, device=x.device).expand_as(x)
            z = _z(op, x, w, b) - _z(op, low, _pos(w), _pos(b)) - _z(op, high, _neg(w), _neg(b))
            s = r / stabilize(z, eps)
            return x * _jt(op, x, w, s) - low * _jt(op, x, _pos(w), s) - high * _jt(op, x, _neg(w), s)
        raise CnnlabError(f"unknown LRP rule {self.name!r}")


def rule(name: str, *, epsilon: float | None = None, stabilizer: float = 1e-6, gamma: float = 0.25,
         low: float | torch.Tensor = 0.0, high: float | torch.Tensor = 1.0) -> Rule:
    """Return the rule named `name`: epsilon, gamma, alpha1_beta0, alpha2_beta1, zplus, flat, wsquare or zbox."""
    if name == "epsilon":
        return Rule("epsilon", epsilon=1e-6 if epsilon is None else epsilon)
    if name in ("zplus", "alpha1_beta0"):
        return Rule("alpha_beta", epsilon=stabilizer, alpha=1.0, beta=0.0)
    if name == "alpha2_beta1":
        return Rule("alpha_beta", epsilon=stabilizer, alpha=2.0, beta=1.0)
    if name in ("gamma", "flat", "wsquare"):
        return Rule(name, epsilon=stabilizer, gamma=gamma)
    if name == "zbox":
        return Rule("zbox", epsilon=stabilizer, low=low, high=high)
    raise CnnlabError(f"unknown LRP rule {name!r}: choose epsilon, gamma, alpha1_beta0, alpha2_beta1, zplus, flat, wsquare or zbox")


#: Composites: the rule of the first layer, of the other convolutions, of the fully connected layers.
COMPOSITES: dict[str, tuple[str, str, str]] = {
    "epsilon": ("epsilon", "epsilon", "epsilon"),
    "epsilon_plus": ("zplus", "zplus", "epsilon"),
    "epsilon_plus_flat": ("flat", "zplus", "epsilon"),  # Kohlbrenner et al. 2020's recommendation
    "epsilon_gamma_box": ("zbox", "gamma", "epsilon"),  # Montavon et al. 2019, Fig. 2
    "epsilon_alpha2_beta1": ("alpha2_beta1", "alpha2_beta1", "epsilon"),
}


@dataclass(frozen=True)
class Composite:
    """Which rule each kind of layer gets."""

    first: Rule
    conv: Rule
    linear: Rule
    norm: Rule = field(default_factory=lambda: Rule("norm"))  # sums and average pools (zennit's Norm)
    affine: Rule = field(default_factory=lambda: Rule("epsilon"))  # an unmerged BatchNorm


def composite(name: str = "epsilon_plus_flat", *, first: str | None = None, conv: str | None = None,
              linear: str | None = None, **kwargs: Any) -> Composite:
    """Return the composite `name`, with any of its three rules replaced by name."""
    if name not in COMPOSITES:
        raise CnnlabError(f"unknown LRP composite {name!r}: choose {', '.join(COMPOSITES)}")
    names = COMPOSITES[name]
    first, conv, linear = first or names[0], conv or names[1], linear or names[2]
    stab = kwargs.get("stabilizer", 1e-6)
    eps = kwargs.get("epsilon")
    return Composite(rule(first, **kwargs), rule(conv, **kwargs), rule(linear, **kwargs),
                     Rule("norm", epsilon=stab), Rule("epsilon", epsilon=1e-6 if eps is None else eps))
