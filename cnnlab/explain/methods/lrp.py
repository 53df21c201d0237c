"""Layer-wise relevance propagation (Bach et al. 2015; Montavon et al. 2019), this project's own.

Relevance travels backwards as the gradient of a forward pass run under `LRPMode` (lrp_mode), a
TorchFunctionMode that exists only inside its `with`: the model's modules are never edited.
Each linear op (conv, linear, average pool, mean, a sum of two branches) runs as an autograd
Function whose forward is the op itself and whose backward is its rule; activations pass
relevance through unchanged; max pooling and concatenation route it as their gradient does.
The rules are `Rule` subclasses (lrp_rules); a `Composite` maps each kind of layer to one, and
the `composite` option takes a composite's name or, from Python, a `Composite` object.

BatchNorm (eval mode, an affine map per channel) is handled three ways:
- directly after a convolution or linear layer, it is merged into it (the rule sees the merged
  weights and bias);
- directly before a convolution, with no non-linearity between (a BN after a sum or a
  concatenation feeding a conv), it is merged into that convolution: the shift becomes a bias
  map, exact at the zero-padded border;
- otherwise (pre-activation ResNets and DenseNet, where BN-ReLU follows the sum or the
  concatenation), it is an affine layer with the epsilon rule: R_in = a x / (a x + b) R.

Modules with parameters other than Conv2d, Linear and BatchNorm get a one-line error naming
the layer, as does a product of two activations (attention, squeeze-and-excitation gates).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.options import Options, bound
from cnnlab.explain.kit.registry import check_options, register
from cnnlab.explain.kit.types import Context, Result
from cnnlab.explain.methods.lrp_mode import LRPMode, check_supported, lrp_mode  # noqa: F401 (re-exported)
from cnnlab.explain.methods.lrp_rules import (  # noqa: F401 (re-exported)
    COMPOSITES,
    RULES,
    AlphaBeta,
    Composite,
    Epsilon,
    Flat,
    Gamma,
    LayerKind,
    Norm,
    Op,
    Rule,
    WSquare,
    ZBox,
    _z,
    composite,
    rule,
    stabilize,
    vjp,
)


@dataclass(frozen=True)
class LrpOptions(Options):
    """LRP (Bach et al. 2015): the composite, per-layer-kind rules and their parameters."""

    composite: str | None = None  # a name, checked by the method; `attribute` also takes a Composite object
    first: str | None = None
    conv: str | None = None
    linear: str | None = None
    epsilon: float | None = bound(0, open_low=True)
    stabilizer: float | None = bound(0, open_low=True)
    gamma: float | None = bound(0)
    low: float | None = None
    high: float | None = None


def _composite(options: dict[str, Any]) -> Composite:
    """Return the composite the options name, or the Composite object given, with rules named in first/conv/linear."""
    given = options.get("composite", "epsilon_plus_flat")
    names = {key: options[key] for key in ("first", "conv", "linear") if options.get(key)}
    kwargs = {k: options[k] for k in ("epsilon", "stabilizer", "gamma", "low", "high") if k in options}
    if not isinstance(given, Composite):
        return composite(str(given), **names, **kwargs)
    if kwargs and not names:
        # Silently dropping a parameter would explain with other rules than the caller asked for.
        raise CnnlabError(f"lrp option {sorted(kwargs)[0]!r} sets no rule of a Composite object: "
                          "pass it to the rule's constructor, or name a rule with first, conv or linear")
    return replace(given, **{key: rule(value, **kwargs) for key, value in names.items()})


def _pixel_bounds(rules: Composite, model: nn.Module, images: torch.Tensor) -> Composite:
    """Return `rules` with each z^B rule's bounds normalised as a PixelModel's first layer sees its pixels."""
    from cnnlab.explain.kit.pixels import PixelModel

    if not isinstance(model, PixelModel):
        return rules

    def normalised(value: float | torch.Tensor) -> torch.Tensor:
        # z^B bounds are pixel values ([0, 1] by default); the first conv sees them normalised.
        return (torch.as_tensor(value, dtype=images.dtype, device=images.device) - model.mean.to(images)) / model.std.to(images)

    boxes = {item.name: getattr(rules, item.name) for item in fields(rules) if isinstance(getattr(rules, item.name), ZBox)}
    return replace(rules, **{key: replace(box, low=normalised(box.low), high=normalised(box.high)) for key, box in boxes.items()})


@register("lrp", "lrp", options=LrpOptions)
def lrp(ctx: Context, images: torch.Tensor, targets: torch.Tensor, **options: Any) -> Result:
    """Return the LRP relevance of each input value for the target logit, under a composite of rules."""
    check_options("lrp", options, ["composite", "first", "conv", "linear", "epsilon", "stabilizer", "gamma", "low", "high", "record"])
    rules = _pixel_bounds(_composite(options), ctx.model, images)
    record: list | None = [] if options.get("record") else None
    maps, logits_kept = [], []
    for start in range(0, len(images), ctx.max_batch):
        x = images[start:start + ctx.max_batch].detach().requires_grad_(True)
        with torch.enable_grad():
            with lrp_mode(ctx.model, rules, record):
                logits = ctx.forward(x)
            onehot = F.one_hot(targets[start:start + ctx.max_batch], logits.shape[1]).to(logits.dtype)
            (relevance,) = torch.autograd.grad(logits, x, onehot * logits.detach())
        maps.append(relevance)
        logits_kept.append(logits.detach())
    extras: dict[str, Any] = {"logits": torch.cat(logits_kept)}
    if record is not None:
        extras["conservation"] = record
    resolved = {"composite": rules.name, "first": rules.rule_for("conv", first=True).name,
                "conv": rules.rule_for("conv").name, "linear": rules.rule_for("linear").name}
    return Result(torch.cat(maps), resolved, extras=extras)
