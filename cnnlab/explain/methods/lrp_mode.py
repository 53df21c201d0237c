"""LRP's machinery: the TorchFunctionMode whose forward pass propagates relevance as its gradient.

Each linear op (conv, linear, average pool, mean, a sum of two branches) runs as an autograd
Function whose forward is the op itself and whose backward is the rule the composite gives its
layer kind; activations pass relevance through unchanged; max pooling and concatenation route it
as their gradient does. `cnnlab.explain.methods.lrp` describes how BatchNorm is handled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnlab.errors import CnnlabError
from cnnlab.explain.methods.lrp_rules import Composite, Op, Rule, _z

# --- the autograd Functions ----------------------------------------------------------------------


@dataclass
class _Spec:
    op: Op
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    rule: Rule
    label: str
    record: list | None


class _RuleOp(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, spec: _Spec) -> torch.Tensor:  # type: ignore[override]
        ctx.spec = spec
        ctx.save_for_backward(x)
        return _z(spec.op, x, spec.weight, spec.bias)

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        spec: _Spec = ctx.spec
        with torch.enable_grad():
            out = spec.rule.propagate(spec.op, x.detach(), spec.weight, spec.bias, relevance)
        if spec.record is not None:
            spec.record.append((spec.label, relevance.flatten(1).sum(1).detach(), out.flatten(1).sum(1).detach()))
        return out, None


def _sum_of_terms(terms: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    return terms[0] + terms[1]


class _SumOp(torch.autograd.Function):
    """a + b with relevance split by the composite's norm rule, the sum being linear in the stacked terms."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, b: torch.Tensor, rule: Rule, record: list | None) -> torch.Tensor:  # type: ignore[override]
        # A copy, not saved tensors: `out += identity` then writes the sum into `a` itself.
        ctx.terms = torch.stack((a.detach(), b.detach()))
        ctx.rule, ctx.record = rule, record
        return a + b

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:  # type: ignore[override]
        with torch.enable_grad():
            both = ctx.rule.propagate(_sum_of_terms, ctx.terms, None, None, relevance)
        ra, rb = both[0], both[1]
        if ctx.record is not None:
            ctx.record.append(("sum", relevance.flatten(1).sum(1), (ra + rb).flatten(1).sum(1)))
        return ra, rb, None, None


class _Pass(torch.autograd.Function):
    """An activation whose backward hands relevance through unchanged."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        return fn(x)

    @staticmethod
    def backward(ctx: Any, relevance: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return relevance, None


# --- the mode ------------------------------------------------------------------------------------

_CONV = {torch.conv2d, F.conv2d}
_ACTIVATIONS = {F.relu, torch.relu, torch.Tensor.relu, F.relu6, F.hardtanh, F.leaky_relu, F.elu, F.selu, F.celu, F.gelu,
                F.silu, F.mish, F.softplus, F.hardswish, torch.tanh, torch.Tensor.tanh, F.local_response_norm}
_ADDS = {torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__, torch.Tensor.__iadd__, torch.Tensor.add_}
_SUBS = {torch.sub, torch.Tensor.sub, torch.Tensor.__sub__, torch.Tensor.__isub__, torch.Tensor.sub_}
#: `out += identity` reaches the mode as add_: the sum is written back into the first operand.
_IN_PLACE = {torch.Tensor.add_, torch.Tensor.sub_, torch.Tensor.__iadd__, torch.Tensor.__isub__,
             torch.Tensor.mul_, torch.Tensor.div_, torch.Tensor.__imul__, torch.Tensor.__itruediv__}
_OUT_OF_PLACE = {torch.Tensor.add_: torch.Tensor.add, torch.Tensor.__iadd__: torch.Tensor.add,
                 torch.Tensor.sub_: torch.Tensor.sub, torch.Tensor.__isub__: torch.Tensor.sub,
                 torch.Tensor.mul_: torch.Tensor.mul, torch.Tensor.__imul__: torch.Tensor.mul,
                 torch.Tensor.div_: torch.Tensor.div, torch.Tensor.__itruediv__: torch.Tensor.div}
_AVERAGES = {F.avg_pool2d, F.adaptive_avg_pool2d, torch.mean, torch.Tensor.mean, torch.sum, torch.Tensor.sum}
_SCALINGS = {torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__, torch.Tensor.__imul__,
             torch.div, torch.Tensor.div, torch.Tensor.__truediv__, torch.Tensor.__itruediv__}
_PRODUCTS = _SCALINGS | {torch.matmul, torch.Tensor.__matmul__, torch.bmm, torch.mm}


def _in_graph(t: object) -> bool:
    return isinstance(t, torch.Tensor) and t.requires_grad


def _after_a_layer(tensor: torch.Tensor) -> bool:
    """Return whether a rule-bearing layer lies upstream of `tensor` in the autograd graph (so it is not the first layer)."""
    seen, frontier = set(), [tensor.grad_fn]
    while frontier:
        node = frontier.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ in ("_RuleOpBackward", "_SumOpBackward"):
            return True
        frontier.extend(next_node for next_node, _ in node.next_functions)
    return False


class LRPMode(TorchFunctionMode):
    """A forward pass under this mode propagates relevance as its gradient (see the module text)."""

    def __init__(self, rules: Composite, record: list | None = None) -> None:
        super().__init__()
        self.rules = rules
        self.record = record
        self.layers = 0
        self.produced: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, Callable, str]] = {}
        self.affine: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _linear(self, kind: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                op: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]) -> torch.Tensor:
        """Run a conv or linear op under its rule, merging an affine BN that feeds it directly."""
        first = not _after_a_layer(x)
        self.layers += 1
        bias_map: torch.Tensor | None = None if bias is None else bias.view(1, -1, *([1] * (x.ndim - 2)))
        feeding = self.affine.get(id(x))
        if feeding is not None and feeding[0] is x and kind == "conv2d" and getattr(op, "groups", 1) == 1:
            _, source, scale, shift = feeding
            # conv(a x + b) = conv(x, W a) + conv(b, W): the shift through the conv, with its padding, is a bias map.
            shift_map = op(shift.view(1, -1, 1, 1).expand_as(source[:1]).contiguous(), weight)
            bias_map = shift_map if bias_map is None else shift_map + bias_map
            weight = weight * scale.view(1, -1, 1, 1)
            x = source
        chosen = self.rules.rule_for("conv" if kind == "conv2d" else "linear", first=first)
        out = _RuleOp.apply(x, _Spec(op, weight.detach(), None if bias_map is None else bias_map.detach(), chosen,
                                     f"{kind}#{self.layers}", self.record))
        self.produced[id(out)] = (out, x, weight, bias_map, op, chosen)
        return out

    def _batch_norm(self, x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, weight: torch.Tensor | None,
                    bias: torch.Tensor | None, eps: float) -> torch.Tensor:
        scale = torch.rsqrt(var + eps) * (1 if weight is None else weight)
        shift = (0 if bias is None else bias) - mean * scale
        produced = self.produced.get(id(x))
        if produced is not None and produced[0] is x:
            # BN right after a conv or linear: one layer with merged weights, under that layer's rule.
            _, source, w, b, op, chosen = produced
            shape = (-1,) + (1,) * (w.ndim - 1)
            merged_bias = (shift.view(1, -1, *([1] * (x.ndim - 2))) if b is None
                           else b * scale.view(1, -1, *([1] * (x.ndim - 2))) + shift.view(1, -1, *([1] * (x.ndim - 2))))
            # The merged layer keeps the rule its conv or linear was given (first layer or not).
            out = _RuleOp.apply(source, _Spec(op, (w * scale.view(shape)).detach(), merged_bias.detach(), chosen,
                                              f"layer+bn#{self.layers}", self.record))
            self.produced[id(out)] = (out, source, w * scale.view(shape), merged_bias, op, chosen)
            return out
        view = (1, -1) + (1,) * (x.ndim - 2)
        op = _channel_scale(view)
        out = _RuleOp.apply(x, _Spec(op, scale.detach(), shift.view(view).detach(), self.rules.rule_for("affine"),
                                       "batchnorm", self.record))
        self.affine[id(out)] = (out, x, scale.detach(), shift.detach())
        return out

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if (func in _CONV or func is F.linear or func is F.batch_norm) and _in_graph(args[0]):
            return self._layer(func, args, kwargs)
        if func in _ACTIVATIONS and _in_graph(args[0]):
            # Module-style calls (`inplace=` or a trailing flag) run out of place; the caller uses the result.
            rest = {k: v for k, v in kwargs.items() if k != "inplace"}
            extra = tuple(a for a in args[1:] if not isinstance(a, bool))
            return _Pass.apply(args[0], lambda t: func(t, *extra, **rest))
        graph = [i for i, a in enumerate(args[:2]) if _in_graph(a)]
        if func in _IN_PLACE and graph:
            if 0 not in graph:
                raise CnnlabError("LRP cannot follow an in-place op that writes an activation into a constant tensor")
            result = self.__torch_function__(_OUT_OF_PLACE[func], types, args, kwargs)
            # Write the result back so statement and `+=` forms both see it; autograd routes the
            # relevance of the overwritten tensor through the copy to the rule that made the result.
            return args[0].copy_(result)
        if (func in _ADDS or func in _SUBS) and len(graph) == 2:
            return self._sum(func, args, kwargs)
        if func in _AVERAGES and _in_graph(args[0]):
            rest_args, rest_kwargs = args[1:], kwargs
            average = func
            return _RuleOp.apply(args[0], _Spec(lambda x, w: average(x, *rest_args, **rest_kwargs), None, None,
                                                self.rules.rule_for("norm"), getattr(func, "__name__", "average"), self.record))
        if func in _PRODUCTS and len(graph) == 2:
            raise CnnlabError("LRP has no rule for a product of two activations (a gate or attention): explain this model with gradcam or integrated_gradients")
        if func in _PRODUCTS and graph and func not in _SCALINGS:
            raise CnnlabError("LRP has no rule for a matrix product with a parameter: use nn.Linear, or explain with integrated_gradients")
        if (func in _SCALINGS or func in _ADDS or func in _SUBS) and len(graph) == 1 and not any(
                _in_graph(a) for a in args[2:]):
            # A constant shift or scale of one activation (input normalisation, GoogLeNet's transform_input,
            # a residual scale): relevance passes through unchanged, as through an activation.
            where = graph[0]
            fn = {torch.Tensor.__imul__: torch.Tensor.__mul__, torch.Tensor.__itruediv__: torch.Tensor.__truediv__,
                  torch.Tensor.__iadd__: torch.Tensor.__add__, torch.Tensor.__isub__: torch.Tensor.__sub__}.get(func, func)
            return _Pass.apply(args[where], lambda t: fn(*args[:where], t, *args[where + 1:], **kwargs))
        return func(*args, **kwargs)

    def _layer(self, func: Callable, args: tuple, kwargs: dict) -> torch.Tensor:
        """Return a conv, linear or BatchNorm call on an activation, run under its rule."""
        if func in _CONV:
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            rest = dict(zip(("stride", "padding", "dilation", "groups"), args[3:], strict=False))
            rest.update({k: v for k, v in kwargs.items() if k != "bias"})
            return self._linear("conv2d", x, weight, bias, _conv_op(rest))
        if func is F.linear:
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            return self._linear("linear", args[0], args[1], bias, _linear_op)
        names = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
        given = {**dict(zip(names, args, strict=False)), **kwargs}
        if given.get("training") or given.get("running_mean") is None:
            raise CnnlabError("LRP needs BatchNorm in eval mode with running statistics: a BN that normalises by batch statistics has no LRP rule")
        return self._batch_norm(given["input"], given["running_mean"], given["running_var"], given.get("weight"),
                                given.get("bias"), float(given.get("eps", 1e-5)))

    def _sum(self, func: Callable, args: tuple, kwargs: dict) -> torch.Tensor:
        """Return the sum or difference of two activations, its relevance split by the norm rule."""
        a, b = args[0], args[1]
        alpha = kwargs.get("alpha", args[2] if len(args) > 2 else 1)
        sign = -1.0 if func in _SUBS else 1.0
        if alpha != 1 or sign != 1.0:
            factor = sign * float(alpha)
            b = _Pass.apply(b, lambda t: t * factor)  # a scaled branch: the sum's rule sees its true size
        shape = torch.broadcast_shapes(a.shape, b.shape)
        # A broadcast operand is expanded first; the expansion's gradient sums its copies' relevance back.
        return _SumOp.apply(a.expand(shape), b.expand(shape), self.rules.rule_for("norm"), self.record)


def _conv_op(rest: dict[str, Any]) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    def op(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        assert weight is not None
        return F.conv2d(x, weight, None, **rest)
    op.groups = rest.get("groups", 1)  # type: ignore[attr-defined]
    return op


def _linear_op(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    assert weight is not None
    return F.linear(x, weight)


def _channel_scale(view: tuple[int, ...]) -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    def op(x: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
        assert scale is not None
        return x * scale.view(view)
    return op


_SUPPORTED = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d)


def check_supported(model: nn.Module) -> None:
    """Raise a one-line error naming the first module whose parameters LRP has no rule for."""
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False)]
        if own and not isinstance(module, _SUPPORTED):
            raise CnnlabError(f"LRP has no rule for {type(module).__name__} at {name or 'the model'!r}: it supports conv, linear, "
                              "BatchNorm, ReLU, pooling, sums and concatenations; explain this model with gradcam or integrated_gradients")
        if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
            raise CnnlabError(f"LRP supports zero-padded convolutions only, and {name!r} pads with {module.padding_mode!r}")


@contextmanager
def lrp_mode(model: nn.Module, rules: Composite, record: list | None = None) -> Iterator[LRPMode]:
    """Yield an LRPMode for forward passes of `model` inside the block (checked for supported layers first)."""
    check_supported(model)
    with LRPMode(rules, record) as mode:
        yield mode


