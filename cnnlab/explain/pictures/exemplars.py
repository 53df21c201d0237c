"""What excites a channel: its top-k images of a data set, the receptive-field crop at each arg-max,
and the deconvnet's projection of that one activation back to pixels (Zeiler & Fergus 2014).

The data set streams through in batches with a running top-k per channel, so it is never held as
activations; only the layer's forward runs (`forward_to` stops the network there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.hooks import (
    forward_to,
    model_device,
    preserved,
    relu_backward,
    resolve_layer,
)
from cnnlab.inspect.receptive import layer_receptive_field, receptive_window


@dataclass(frozen=True)
class Exemplar:
    """One of a channel's top images: where in the data set, how strongly, and where in the image."""

    channel: int
    index: int  # position of the image in the data set's order
    score: float  # the channel's activation: its largest unit, or its spatial mean (by="mean")
    position: tuple[int, int]  # (row, column) of the arg-max unit on the layer's grid
    window: tuple[tuple[int, int], tuple[int, int]]  # input rows and columns [first, last] that unit sees, unclipped


def batches_of(images: torch.Tensor, size: int, prepare: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Iterator[torch.Tensor]:
    """Return an iterator over `images` in batches of `size`, each through `prepare` (e.g. the run's normalisation)."""
    for start in range(0, len(images), size):
        batch = images[start:start + size]
        yield prepare(batch) if prepare is not None else batch


def _channels(model: nn.Module, layer: str, sample: torch.Tensor, channels: list[int] | None) -> tuple[list[int], tuple[int, ...]]:
    """Return the channels checked against the layer's width, and the layer's output shape for one image."""
    with torch.no_grad():
        out = forward_to(model, [layer], sample[:1])[layer]
    if out.ndim != 4:
        raise CnnlabError(f"layer {layer} gives {tuple(out.shape)}, not an (N, C, H, W) map: choose a convolutional layer")
    width = out.shape[1]
    chosen = list(range(min(width, 16))) if channels is None else list(channels)
    bad = [c for c in chosen if not 0 <= c < width]
    if bad:
        raise CnnlabError(f"layer {layer} has channels 0-{width - 1}, not {bad[0]}: choose channels in that range")
    return chosen, tuple(out.shape[1:])


def top_exemplars(model: nn.Module, batches: Iterable[torch.Tensor], layer: str, channels: list[int] | None = None, *,
                  k: int = 9, by: str = "max") -> dict[int, list[Exemplar]]:
    """Return each channel's `k` strongest images of the batches, best first, with the arg-max unit's receptive field.

    `by="max"` ranks an image by the channel's largest unit (Zeiler & Fergus), `by="mean"` by its
    spatial mean (what activation maximisation's channel objective raises).
    """
    if by not in ("max", "mean"):
        raise CnnlabError(f"unknown ranking {by!r}: choose max or mean")
    name, _ = resolve_layer(model, layer)
    best: torch.Tensor | None = None  # (K, k') scores
    where = torch.empty(0)  # (K, k') image indices
    cells = torch.empty(0)  # (K, k') flat arg-max positions
    seen, shape, chosen, input_shape = 0, (), [], ()
    device = model_device(model)
    with preserved(model), torch.no_grad():
        for batch in batches:
            batch = (batch[0] if isinstance(batch, tuple | list) else batch).to(device)
            if best is None:
                chosen, shape = _channels(model, name, batch, channels)
                input_shape = tuple(batch.shape[1:])
            act = forward_to(model, [name], batch)[name][:, chosen].float().flatten(2)  # (B, K, h*w)
            peak, arg = act.max(2)
            score = peak if by == "max" else act.mean(2)
            index = torch.arange(seen, seen + len(batch)).expand(len(chosen), -1)
            scores = score.T.cpu() if best is None else torch.cat([best, score.T.cpu()], 1)  # (K, k' + B)
            indices = index if best is None else torch.cat([where, index], 1)
            places = arg.T.cpu() if best is None else torch.cat([cells, arg.T.cpu()], 1)
            order = scores.topk(min(k, scores.shape[1]), dim=1).indices
            best, where, cells = scores.gather(1, order), indices.gather(1, order), places.gather(1, order)
            seen += len(batch)
    if best is None:
        raise CnnlabError("the data set is empty: give images to rank")
    row = layer_receptive_field(model, name, input_shape)
    width = shape[2]
    result: dict[int, list[Exemplar]] = {}
    for slot, channel in enumerate(chosen):
        result[channel] = []
        for score, index, cell in zip(best[slot].tolist(), where[slot].tolist(), cells[slot].tolist(), strict=True):
            position = divmod(int(cell), width)
            rows, columns = receptive_window(row, position)
            result[channel].append(Exemplar(channel, int(index), float(score), position, (rows, columns)))
    return result


def crop(image: torch.Tensor, window: tuple[tuple[int, int], tuple[int, int]], fill: float = 0.0) -> torch.Tensor:
    """Return the field-sized crop (C, h, w) of `image` (C, H, W) that `window` covers; pixels beyond the image are `fill`."""
    (top, bottom), (left, right) = window
    out = torch.full((image.shape[0], bottom - top + 1, right - left + 1), fill, dtype=image.dtype, device=image.device)
    rows = slice(max(top, 0), min(bottom, image.shape[1] - 1) + 1)
    columns = slice(max(left, 0), min(right, image.shape[2] - 1) + 1)
    out[:, rows.start - top:rows.stop - top, columns.start - left:columns.stop - left] = image[:, rows, columns]
    return out


def deconv_projection(model: nn.Module, image: torch.Tensor, layer: str, channel: int, position: tuple[int, int]) -> torch.Tensor:
    """Return the deconvnet's projection (C, H, W) of one unit's activation back to the input, other units set to zero.

    Max pooling goes back through its switches (autograd's max-pool backward), convolutions through
    their transposed filters and each ReLU rectifies the backward signal (Zeiler & Fergus 2014, 2.1).
    """
    name, _ = resolve_layer(model, layer)
    device = model_device(model)
    x = (image if image.ndim == 4 else image[None])[:1].detach().float().to(device).requires_grad_(True)
    with preserved(model), relu_backward("deconvnet"):
        out = forward_to(model, [name], x)[name]
        if out.ndim != 4 or not 0 <= channel < out.shape[1] or not all(0 <= p < s for p, s in zip(position, out.shape[2:], strict=True)):
            raise CnnlabError(f"layer {name} has output {tuple(out.shape[1:])}: choose a channel and position inside it")
        out[0, channel, position[0], position[1]].backward()
    assert x.grad is not None
    return x.grad[0].detach()
