"""Receptive fields: analytic (the recurrence, per layer) and effective (Luo et al. 2016)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.devices import device_of
from cnnlab.errors import CnnlabError
from cnnlab.inspect.summary import LayerRow, summary


def analytic_receptive_fields(model: nn.Module | str, input_size: tuple[int, ...]) -> list[LayerRow]:
    """Return the summary rows of every spatial layer, each carrying its receptive field and jump."""
    return [row for row in summary(model, input_size).layers if row.receptive_field is not None]


def layer_receptive_field(model: nn.Module, layer: str, input_size: tuple[int, ...]) -> LayerRow:
    """Return the summary row carrying `layer`'s receptive field, jump and start; a container takes its last leaf's."""
    rows = {row.name: row for row in analytic_receptive_fields(model, input_size)}
    inside = [row for key, row in rows.items() if key.startswith(layer + ".")]
    row = rows.get(layer) or (inside[-1] if inside else None)
    if row is None or row.jump is None or row.start is None or row.receptive_field is None:
        raise CnnlabError(f"no receptive-field geometry for layer {layer!r}: choose a convolutional layer (`cnnlab summary` shows each field)")
    return row


def receptive_window(row: LayerRow, position: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """Return, per spatial axis, the input pixels [first, last] that unit `position` of `row`'s layer sees (unclipped)."""
    assert row.receptive_field is not None and row.jump is not None and row.start is not None
    window = []
    for index, size, jump, start in zip(position, row.receptive_field, row.jump, row.start, strict=True):
        # The field of unit i is centred on start + i * jump (Araujo et al. 2019, eq. 1-3); an even field
        # has its centre between two pixels, so first = centre - (size - 1) / 2 is an integer again.
        first = start + index * jump - (size - 1) / 2
        window.append((round(first), round(first) + size - 1))
    return tuple(window)


@dataclass(frozen=True)
class EffectiveReceptiveField:
    """Mean |d centre unit / d input| over random inputs, and the radius holding most of it."""

    map: torch.Tensor  # (H, W) or (L,) gradient magnitude, normalised to sum 1
    centre: tuple[float, ...]  # mass centre of the map, in input pixel coordinates
    radius: float  # smallest radius around the centre that holds `mass` of the map
    mass: float  # the fraction the radius holds (0.95 by default)


def _module_named(model: nn.Module, name: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        raise CnnlabError(f"model has no layer {name!r}: use a name from `cnnlab summary`")
    return modules[name]


class _Captured(Exception):
    """Raised by the capture hook to stop the forward pass once the chosen layer has run."""


def effective_receptive_field(
    model: nn.Module,
    input_size: tuple[int, ...],
    *,
    layer: str | None = None,
    samples: int = 16,
    mass: float = 0.95,
    seed: int = 0,
) -> EffectiveReceptiveField:
    """Return the effective receptive field of the centre unit of `layer` (default: the output).

    Luo et al. (2016) set the gradient of the centre output unit to 1 and read the gradient
    at the input, averaged over random inputs. Only the input gets a gradient: the model's
    parameters, their .grad and its train/eval mode are left as they are.
    """
    if not 0 < mass <= 1:
        raise CnnlabError(f"mass must lie in (0, 1], got {mass}")
    if samples < 1:
        raise CnnlabError(f"the effective receptive field needs samples >= 1, got {samples}")
    generator = torch.Generator().manual_seed(seed)
    device = device_of(model)
    target = _module_named(model, layer) if layer is not None else None
    # A model in training mode updates BatchNorm statistics in forward: put them back afterwards.
    saved_buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        total = _accumulate(model, input_size, target, layer, samples, generator, device)
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved_buffers[name])
    erf_map = total / total.sum().clamp_min(1e-30)
    coords = torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in erf_map.shape], indexing="ij")
    weights = erf_map.double()
    centre = tuple(float((c * weights).sum()) for c in coords)
    distance = torch.sqrt(sum((c - m) ** 2 for c, m in zip(coords, centre, strict=True)))
    order = torch.argsort(distance.flatten())
    cumulative = torch.cumsum(weights.flatten()[order], dim=0)
    position = int(torch.searchsorted(cumulative, torch.tensor(mass - 1e-12, dtype=torch.float64)))
    radius = float(distance.flatten()[order][min(position, order.numel() - 1)])
    return EffectiveReceptiveField(map=erf_map, centre=centre, radius=radius, mass=mass)


def _accumulate(
    model: nn.Module,
    input_size: tuple[int, ...],
    target: nn.Module | None,
    layer: str | None,
    samples: int,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """Return the sum over `samples` random inputs of |d centre unit / d input|, summed over channels."""
    total = torch.zeros(input_size[1:])
    captured: dict[str, torch.Tensor] = {}

    def grab(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        captured["out"] = output
        raise _Captured

    for _ in range(samples):
        x = torch.randn((1, *input_size), generator=generator).to(device).requires_grad_(True)
        captured.clear()
        if target is None:
            out = model(x)
        else:
            handle = target.register_forward_hook(grab)
            try:
                model(x)
            except _Captured:
                pass
            finally:
                handle.remove()
            if "out" not in captured:
                raise CnnlabError(f"layer {layer!r} did not run in the forward pass")
            out = captured["out"]
        if not isinstance(out, torch.Tensor) or out.ndim < 3:
            raise CnnlabError(
                "the output has no spatial dimensions: choose a convolutional layer "
                "(layer=NAME; on the command line --layer NAME)"
            )
        centre_index = tuple(s // 2 for s in out.shape[2:])
        unit = out[(slice(None), slice(None), *centre_index)].sum()  # all channels of the centre
        (grad,) = torch.autograd.grad(unit, x)
        magnitude = grad.abs().sum(dim=(0, 1)).detach().cpu()  # (H, W)
        total += magnitude
    return total
