"""LRP's rules and composites (Bach et al. 2015; Montavon et al. 2017, 2019).

A rule is a `Rule` subclass whose `propagate` maps a linear op's input, weights, bias and output
relevance to the input's relevance; its parameters are its constructor's. A `Composite` says
which rule each kind of layer gets (`rule_for`). Write a rule of your own by subclassing `Rule`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch

from cnnlab.errors import CnnlabError

Op = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]  # linear in x: op(x, weight), no bias
LayerKind = Literal["conv", "linear", "norm", "affine"]


def stabilize(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Return z pushed away from zero by epsilon in its own sign (zero counts as positive)."""
    return z + ((z == 0).to(z) + z.sign()) * epsilon


def vjp(op: Op, like: torch.Tensor, weight: torch.Tensor | None, s: torch.Tensor) -> torch.Tensor:
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


class Rule(ABC):
    """One LRP rule: a subclass's `propagate` returns the input relevance of one linear op."""

    #: The name the method reports in its resolved options (a subclass without one reports its class name).
    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__

    @abstractmethod
    def propagate(self, op: Op, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  relevance: torch.Tensor) -> torch.Tensor:
        """Return the relevance of the input x of `op(x, weight) + bias`, given its output's `relevance`.

        `op` is linear in x and leaves the bias out; `vjp(op, x, weight, s)` returns J^T s.
        """

    def __call__(self, op: Op, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                 relevance: torch.Tensor) -> torch.Tensor:
        """Return `propagate(op, x, weight, bias, relevance)`."""
        return self.propagate(op, x, weight, bias, relevance)


def _epsilon(op: Op, x: torch.Tensor, w: torch.Tensor | None, b: torch.Tensor | None, r: torch.Tensor,
             eps: float) -> torch.Tensor:
    # Bach et al. 2015, Eq. 58 (LRP-epsilon).
    return x * vjp(op, x, w, r / stabilize(_z(op, x, w, b), eps))


@dataclass(frozen=True)
class Epsilon(Rule):
    """The epsilon rule: R_i = sum_j x_i w_ij / (z_j + eps sign z_j) R_j."""

    epsilon: float = 1e-6
    name: ClassVar[str] = "epsilon"

    def propagate(self, op: Op, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  relevance: torch.Tensor) -> torch.Tensor:
        """Return the epsilon rule's input relevance."""
        return _epsilon(op, x, weight, bias, relevance, self.epsilon)


@dataclass(frozen=True)
class Norm(Rule):
    """Sums and average pools (zennit's Norm): relevance split in proportion to each term."""

    stabilizer: float = 1e-6
    name: ClassVar[str] = "norm"

    def propagate(self, op: Op, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  relevance: torch.Tensor) -> torch.Tensor:
        """Return each term's share of the relevance (the epsilon rule on a weight-free op)."""
        return _epsilon(op, x, weight, bias, relevance, self.stabilizer)


@dataclass(frozen=True)
class AlphaBeta(Rule):
    """The alpha-beta rule (Bach et al. 2015, Eq. 60); AlphaBeta(1, 0) is z+."""

    alpha: float = 1.0
    beta: float = 0.0
    stabilizer: float = 1e-6
    name: ClassVar[str] = "alpha_beta"

    def propagate(self, op: Op, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  relevance: torch.Tensor) -> torch.Tensor:
        """Return alpha times the positive contributions' share minus beta times the negative ones'."""
        w, b, r, eps = weight, bias, relevance, self.stabilizer
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        # Positive and negative contributions are normalised apart.
        zp = _z(op, xp, _pos(w), _pos(b)) + op(xn, _neg(w))
        zn = _z(op, xp, _neg(w), _neg(b)) + op(xn, _pos(w))
        sp, sn = r / stabilize(zp, eps), r / stabilize(zn, eps)
        positive = xp * vjp(op, x, _pos(w), sp) + xn * vjp(op, x, _neg(w), sp)
        negative = xp * vjp(op, x, _neg(w), sn) + xn * vjp(op, x, _pos(w), sn)
        return self.alpha * positive - (self.beta * negative if self.beta else 0.0)


@dataclass(frozen=True)
class Gamma(Rule):
    """The gamma rule (Montavon et al. 2019), in the form that also admits negative inputs (Andeol et al. 2021)."""

    gamma: float = 0.25
    stabilizer: float = 1e-6
    name: ClassVar[str] = "gamma"

    def propagate(self, op: Op, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  relevance: torch.Tensor) -> torch.Tensor:
        """Return the gamma rule's input relevance: positive outputs favour positive contributions and vice versa."""
        w, b, r, eps, g = weight, bias, relevance, self.stabilizer, self.gamma
        assert w is not None
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        wp, wn = w + g * w.clamp(min=0), w + g * w.clamp(max=0)
        bp = None if b is None else b + g * b.clamp(min=0)
        bn = None if b is None else b + g * b.clamp(max=0)
        z = _z(op, x, w, b)
        sp = (z > 0).to(r) * r / stabilize(_z(op, xp, wp, bp) + op(xn, wn), eps)
        sn = (z < 0).to(r) * r / stabilize(_z(op, xp, wn, bn) + op(xn, wp), eps)
        return (xp * vjp(op, x, wp, sp) + xn * vjp(op, x, wn, sp)
                + xp * vjp(op, x, wn, sn) + xn * vjp(op, x, wp, sn))


def _by_weights(op: Op, x: torch.Tensor, w: torch.Tensor | None, b: torch.Tensor | None, r: torch.Tensor,
                eps: float) -> torch.Tensor:
    # Relevance spread by the (transformed) weights alone, independent of the input.
    ones = torch.ones_like(x)
    return vjp(op, x, w, r / stabilize(_z(op, ones, w, b), eps))


@dataclass(frozen=True)
class Flat(Rule):
    """The flat rule (Lapuschkin et al. 2019): relevance spread uniformly over each output's receptive field."""

    stabilizer: float = 1e-6
    name: ClassVar[str] = "flat"

    def propagate(self, op: Op, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  relevance: torch.Tensor) -> torch.Tensor:
        """Return the flat rule's input relevance (all weights one, no bias)."""
        ones = None if weight is None else torch.ones_like(weight)
        return _by_weights(op, x, ones, None, relevance, self.stabilizer)


@dataclass(frozen=True)
class WSquare(Rule):
    """The w^2 rule (Montavon et al. 2017): relevance spread in proportion to the squared weights."""

    stabilizer: float = 1e-6
    name: ClassVar[str] = "wsquare"

    def propagate(self, op: Op, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  relevance: torch.Tensor) -> torch.Tensor:
        """Return the w^2 rule's input relevance."""
        squared = None if weight is None else weight * weight
        return _by_weights(op, x, squared, None if bias is None else bias * bias, relevance, self.stabilizer)


@dataclass(frozen=True, eq=False)  # eq=False: the bounds may be tensors, which do not compare to one bool
class ZBox(Rule):
    """The z^B rule (Montavon et al. 2017) for inputs bounded in [low, high] (numbers or per-value tensors)."""

    low: float | torch.Tensor = 0.0
    high: float | torch.Tensor = 1.0
    stabilizer: float = 1e-6
    name: ClassVar[str] = "zbox"

    def propagate(self, op: Op, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                  relevance: torch.Tensor) -> torch.Tensor:
        """Return the z^B rule's input relevance."""
        w, b = weight, bias
        low = torch.as_tensor(self.low, dtype=x.dtype, device=x.device).expand_as(x)
        high = torch.as_tensor(self.high, dtype=x.dtype, device=x.device).expand_as(x)
        z = _z(op, x, w, b) - _z(op, low, _pos(w), _pos(b)) - _z(op, high, _neg(w), _neg(b))
        s = relevance / stabilize(z, self.stabilizer)
        return x * vjp(op, x, w, s) - low * vjp(op, x, _pos(w), s) - high * vjp(op, x, _neg(w), s)


RULES = ("epsilon", "gamma", "alpha1_beta0", "alpha2_beta1", "zplus", "flat", "wsquare", "zbox")


def rule(name: str, *, epsilon: float | None = None, stabilizer: float = 1e-6, gamma: float = 0.25,
         low: float | torch.Tensor = 0.0, high: float | torch.Tensor = 1.0) -> Rule:
    """Return the rule named `name` (one of RULES) with the parameters it takes."""
    if name == "epsilon":
        return Epsilon(1e-6 if epsilon is None else epsilon)
    if name in ("zplus", "alpha1_beta0"):
        return AlphaBeta(1.0, 0.0, stabilizer)
    if name == "alpha2_beta1":
        return AlphaBeta(2.0, 1.0, stabilizer)
    if name == "gamma":
        return Gamma(gamma, stabilizer)
    if name == "flat":
        return Flat(stabilizer)
    if name == "wsquare":
        return WSquare(stabilizer)
    if name == "zbox":
        return ZBox(low, high, stabilizer)
    raise CnnlabError(f"unknown LRP rule {name!r}: choose {', '.join(RULES[:-1])} or {RULES[-1]}")


# --- the composites ----------------------------------------------------------------------------

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
    """Which rule each kind of layer gets; `rule_for` answers the method (override it to map layers otherwise)."""

    first: Rule  # the first conv or linear layer, the one that sees the input
    conv: Rule
    linear: Rule
    norm: Rule = field(default_factory=Norm)  # sums and average pools
    affine: Rule = field(default_factory=Epsilon)  # a BatchNorm not merged into a neighbouring layer
    name: str = field(default="custom", kw_only=True)  # what the method reports as its composite

    def rule_for(self, kind: LayerKind, first: bool = False) -> Rule:
        """Return the rule of a layer of `kind`; `first` marks the conv or linear layer that sees the input."""
        if kind in ("conv", "linear") and first:
            return self.first
        rules = {"conv": self.conv, "linear": self.linear, "norm": self.norm, "affine": self.affine}
        if kind not in rules:
            raise CnnlabError(f"unknown LRP layer kind {kind!r}: choose {', '.join(rules)}")
        return rules[kind]


def composite(name: str = "epsilon_plus_flat", *, first: str | None = None, conv: str | None = None,
              linear: str | None = None, **kwargs: Any) -> Composite:
    """Return the composite `name`, with any of its three rules replaced by name (one of RULES)."""
    if name not in COMPOSITES:
        raise CnnlabError(f"unknown LRP composite {name!r}: choose {', '.join(COMPOSITES)}")
    names = COMPOSITES[name]
    first, conv, linear = first or names[0], conv or names[1], linear or names[2]
    stab = kwargs.get("stabilizer", 1e-6)
    eps = kwargs.get("epsilon")
    return Composite(rule(first, **kwargs), rule(conv, **kwargs), rule(linear, **kwargs),
                     Norm(stab), Epsilon(1e-6 if eps is None else eps), name=name)
