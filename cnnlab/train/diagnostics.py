"""Training health (`diagnostics=true`): per-layer gradient norms and activation statistics per epoch.

Gradient norms are those of the real training steps: after every step taken the L2 norm of each
layer's weight gradient is added to a running sum on the device (one fused op, no host sync),
and the epoch's mean is recorded (an fp16 step the scaler skipped for an overflow is left
out). Activation statistics come from a fixed, seeded probe sample of training images, run once at the end of each epoch in eval mode (no BatchNorm statistics move,
no dropout), with hooks that live only for that forward pass: per activation layer the mean,
the standard deviation and the fraction of dead units, those (channel, position) outputs that
are <= 0 on every probe image (for a ReLU: never fire). Vanishing gradients show as norms that
fall with depth, dead units as a fraction that climbs over training (Glorot & Bengio 2010; Lu
et al. 2019, "Dying ReLU").

Each epoch appends one JSON line to diagnostics.jsonl in the run directory, after that epoch's
checkpoint, so a resumed run drops the lines of epochs it repeats.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.train.state import Callback, Context, EpochMetrics

#: Modules whose outputs are activations (their dead fraction means "never positive").
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
               nn.Hardswish, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardtanh)
#: Layers whose outputs stand in for activations in a model that applies them functionally.
FALLBACK = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Return (module name, weight) of every conv and linear layer with a trainable weight, in model order.

    Normalisation scales are left out: their gradients live on another scale, and interleaved
    with the convs' they would hide the trend with depth.
    """
    found = []
    for name, module in model.named_modules():
        weight = module._parameters.get("weight")
        if isinstance(weight, nn.Parameter) and weight.requires_grad and weight.ndim >= 2:
            found.append((name, weight))
    return found


def activation_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return (name, module) of the activation modules, or of convs and linears when it has none."""
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, ACTIVATIONS)]
    return found or [(n, m) for n, m in model.named_modules() if isinstance(m, FALLBACK)]


@torch.no_grad()
def activation_statistics(model: nn.Module, images: torch.Tensor) -> dict[str, dict[str, float]]:
    """Return per activation layer (each call of a reused module apart) its mean, std and dead fraction on `images`."""
    stats: dict[str, dict[str, float]] = {}
    calls: dict[str, int] = {}  # a module called twice in one forward gets a line per call
    handles = []

    def record(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if not isinstance(output, torch.Tensor) or output.ndim < 2:
                return
            calls[name] = calls.get(name, 0) + 1
            key = name if calls[name] == 1 else f"{name}#{calls[name]}"
            values = output.float()
            stats[key] = {
                "mean": values.mean().item(), "std": values.std().item(),
                "dead": (values.amax(dim=0) <= 0).float().mean().item(),
            }
        return hook

    was_training = model.training
    try:
        for name, module in activation_layers(model):
            handles.append(module.register_forward_hook(record(name)))
        model.eval()
        model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return stats


class Diagnostics(Callback):
    """Record per-layer gradient norms (every step) and activation statistics (a probe batch, every epoch)."""

    order = 36  # after metrics.csv (35): a line is written only once its epoch's checkpoint is kept

    def __init__(self, path: Path | None, probe_images: int = 256) -> None:
        self.path = path
        self.probe_images = probe_images
        self.history: list[dict[str, Any]] = []  # every line written (or kept, without a path)
        self._pending: dict[str, Any] | None = None

    def on_fit_start(self, ctx: Context) -> None:
        """Choose the layers, take the probe batch, and drop lines of epochs a resumed run repeats."""
        self.layers = weighted_layers(ctx.model)
        self.sums = torch.zeros(len(self.layers), device=ctx.device)
        self.steps = torch.zeros((), device=ctx.device)  # steps whose gradients were all finite
        # The seeded sample the normalisation statistics use: the same images resident or streamed.
        probe = torch.cat(list(ctx.train_data.sample_batches(count=self.probe_images)))
        self.probe = ctx.norm(probe.to(ctx.device))
        if self.path is not None and self.path.is_file():
            self.history = [line for line in _lines(self.path) if line["epoch"] <= ctx.state.epoch]
            self.path.write_text("".join(json.dumps(line) + "\n" for line in self.history))

    def on_step_end(self, ctx: Context) -> None:
        """Add this step's per-layer gradient norms to the epoch's sums, on the device."""
        grads = [w.grad if w.grad is not None else torch.zeros((), device=w.device) for _, w in self.layers]
        if not grads:
            return
        norms = torch.stack(torch._foreach_norm(grads)).float()
        # An fp16 step the scaler skipped (an overflow) leaves inf/NaN gradients: not a step taken.
        finite = torch.isfinite(norms).all()
        self.sums += torch.where(finite, norms, 0.0)
        self.steps += finite.float()

    def on_train_epoch_end(self, ctx: Context) -> None:
        """Close the epoch's gradient means and measure the probe batch's activations."""
        means = (self.sums / self.steps.clamp(min=1)).tolist()
        self._pending = {
            "grad_norm": {name: value for (name, _), value in zip(self.layers, means, strict=True)},
            "activations": activation_statistics(ctx.model, self.probe),
            "probe_images": len(self.probe),
        }
        self.sums.zero_()
        self.steps.zero_()

    def on_epoch_end(self, ctx: Context, metrics: EpochMetrics, is_best: bool) -> None:
        """Append the epoch's line to diagnostics.jsonl."""
        if self._pending is None:
            return
        self._pending = {"epoch": metrics.epoch, **self._pending}
        self.history.append(self._pending)
        if self.path is not None:
            with self.path.open("a") as handle:
                handle.write(json.dumps(self._pending) + "\n")
        self._pending = None


def _lines(path: Path) -> list[dict[str, Any]]:
    """Return the file's JSON lines; a torn one (a kill or a full disk mid-write) is left out."""
    lines = []
    for text in path.read_text().splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict) and isinstance(line.get("epoch"), int):
            lines.append(line)
    return lines


def read_diagnostics(run: Path) -> list[dict[str, Any]]:
    """Return the lines of a run's diagnostics.jsonl ([] when it recorded none)."""
    path = Path(run) / "diagnostics.jsonl"
    return _lines(path) if path.is_file() else []
