"""Stochastic weight averaging (Izmailov et al. 2018): the running mean of the weights at epoch ends.

The average lives beside the model and in every checkpoint (so resume continues it). When the
run ends, the average's BatchNorm statistics are recomputed with one pass over the training
images (the mean of the weights has no statistics of its own: their Sec. 3.2), and the result is
written as checkpoints/swa, which `load_run` serves by default.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data.tta import centre_crop
from cnnlab.runs.checkpoint import save_checkpoint
from cnnlab.runs.recipe import Recipe
from cnnlab.train.evaluation import scored_batches
from cnnlab.train.state import Callback, Context, EpochMetrics


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, batches: Any, norm: Any, crop: int | None = None) -> None:
    """Set every BatchNorm's running statistics to the mean of its batch statistics over the uint8 `batches`.

    Each batch counts alike (momentum None, as torch.optim.swa_utils.update_bn), so with equal
    batches the running mean is the mean over all images; `crop` cuts the centre the model trained at.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        return
    momenta = [m.momentum for m in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average: every batch counts alike
    was_training = model.training
    model.train()
    for images, _ in batches:
        x = norm(images)
        model(x if crop is None else centre_crop(x, crop))
    model.train(was_training)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum


class StochasticWeightAveraging(Callback):
    """Average the weights at the end of every epoch from start_epoch on; write checkpoints/swa at the end."""

    order = 6  # before checkpoints (30): each checkpoint holds the average including its own epoch
    checkpoint_key = "swa"

    def __init__(self, directory: Path, recipe: Recipe) -> None:
        self.directory = directory
        self.recipe = recipe
        self.start = recipe.paradigm.swa.start_epoch
        self.average: nn.Module | None = None
        self.count = 0
        self._restored: dict[str, Any] | None = None

    def on_fit_start(self, ctx: Context) -> None:
        """Make the average's copy of the model, holding a checkpoint's average when resuming."""
        self.average = copy.deepcopy(ctx.model).eval().requires_grad_(False)
        if self._restored is not None:
            self.count = int(self._restored["count"])
            if self.count:
                self.average.load_state_dict(self._restored["weights"])

    @torch.no_grad()
    def on_epoch_end(self, ctx: Context, metrics: EpochMetrics, is_best: bool) -> None:
        """Fold this epoch's weights into the mean once start_epoch is reached."""
        if ctx.state.epoch < self.start:
            return
        self.count += 1
        mine, theirs = list(self.average.parameters()), list(ctx.model.parameters())
        torch._foreach_lerp_(mine, theirs, 1.0 / self.count)  # mean += (w - mean) / n
        for buffer, source in zip(self.average.buffers(), ctx.model.buffers(), strict=True):
            buffer.copy_(source)  # until the statistics are recomputed at the end

    def on_fit_end(self, ctx: Context) -> None:
        """Recompute the average's BatchNorm statistics and write checkpoints/swa, when training finished."""
        finished = ctx.state.epoch >= self.recipe.epochs or ctx.state.stop_reason is not None
        if not finished or self.count == 0:
            return  # interrupted: resume goes on averaging
        batches = scored_batches(ctx.train_data, self.recipe.batch_size, ctx.device)  # empty streamed batches left out
        recompute_batchnorm(self.average, batches, ctx.norm, self.recipe.evaluation.crop)
        info = {"epoch": ctx.state.epoch, "step": ctx.state.step, "recipe_hash": self.recipe.digest(),
                "swa_models": self.count}
        save_checkpoint(self.directory / "swa", self.average, {"ema": None}, info)

    def state_dict(self) -> dict[str, Any] | None:
        """Return the mean so far and how many epochs it holds."""
        if self.average is None:
            return self._restored
        # No copy of the weights in the checkpoints before averaging starts.
        return {"count": self.count, "weights": self.average.state_dict() if self.count else None}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Keep a checkpoint's mean until on_fit_start builds the copy."""
        self._restored = state
