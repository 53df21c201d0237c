"""Batched primitives every method is built on.

They flatten (image, sample) pairs into one index, so Integrated Gradients steps, SmoothGrad draws,
masks and windows of several images share a forward pass, chunked to `max_batch` rows.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.types import Forward


def pick(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Return logits[i, targets[i]] for each row (B,)."""
    return logits.gather(1, targets.view(-1, 1)).squeeze(1)


def sampled_gradients(forward: Forward, targets: torch.Tensor, count: int, samples: int,
                      make: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                      combine: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                      max_batch: int) -> torch.Tensor:
    """Return sum over samples of combine(i, s, x, grad) per image, as (K, N, ...).

    `make(i, s)` builds the inputs of image indices i and sample indices s (both (B,)); the target
    score's gradient at them is passed to `combine`, which returns (K, B, ...) contributions. All
    (image, sample) pairs are flattened and run `max_batch` at a time.
    """
    total = count * samples
    device = targets.device
    result: torch.Tensor | None = None
    for start in range(0, total, max_batch):
        flat = torch.arange(start, min(total, start + max_batch), device=device)
        i, s = flat // samples, flat % samples
        x = make(i, s).detach().requires_grad_(True)
        with torch.enable_grad():
            logits = forward(x)
            score = pick(logits, targets[i])
            (grad,) = torch.autograd.grad(score.sum(), x)
        part = combine(i, s, x.detach(), grad)
        if result is None:
            result = torch.zeros((part.shape[0], count, *part.shape[2:]), dtype=part.dtype, device=device)
        result.index_add_(1, i, part)
    assert result is not None
    return result


@torch.no_grad()
def sampled_scores(forward: Forward, targets: torch.Tensor, count: int, samples: int,
                   make: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], max_batch: int,
                   score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                   pairs: torch.Tensor | None = None) -> torch.Tensor:
    """Return the target score (N, S) of every (image, sample) input `make(i, s)` builds, chunked.

    With `pairs` (P, 2) of (image, sample) indices, only those are scored, returned as (P,).
    """
    device = targets.device
    total = count * samples if pairs is None else len(pairs)
    out: torch.Tensor | None = None
    for start in range(0, total, max_batch):
        if pairs is None:
            flat = torch.arange(start, min(total, start + max_batch), device=device)
            i, s = flat // samples, flat % samples
        else:
            i, s = pairs[start:start + max_batch, 0], pairs[start:start + max_batch, 1]
        logits = forward(make(i, s))
        part = pick(logits, targets[i]) if score is None else score(logits, targets[i])
        if out is None:
            # The scores keep the logits' dtype: occlusion and RISE take differences of scores that a
            # float64 model resolves and float32 would round to zero.
            out = torch.empty(total, device=device, dtype=part.dtype)
        out[start:start + len(i)] = part
    if out is None:  # nothing to score
        out = torch.empty(total, device=device)
    return out.view(count, samples) if pairs is None else out


@torch.no_grad()
def predict(forward: Forward, images: torch.Tensor, max_batch: int, name: str = "the model") -> torch.Tensor:
    """Return the logits of `images`, chunked."""
    outs = [forward(images[i:i + max_batch]) for i in range(0, len(images), max_batch)]
    if not isinstance(outs[0], torch.Tensor):
        raise CnnlabError(not_logits(outs[0], name))
    return torch.cat(outs)


def not_logits(out: object, model: str) -> str:
    """Return the one-line refusal for `model` whose forward gives `out` instead of (N, classes) logits."""
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    hint = (": a detector's boxes are explained one at a time (cnnlab explain RUN --box K)"
            if hasattr(out, "candidates") else ": explain a classifier")
    return f"{model} returns {shape}, not (N, classes) logits{hint}"

