"""Callbacks, in their fixed order: data-dependent init (0), EMA (5), early stopping (10),
TensorBoard (25), checkpoints (30), metrics.csv (35), the progress bar (40).

The first three follow from the recipe (`recipe_callbacks`); the writers from the run directory.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.runs.recipe import Recipe
from cnnlab.runs.rundir import append_metrics
from cnnlab.train.state import Callback, Context, EpochMetrics


class WhiteningInit(Callback):
    """Initialise the model's `whiten` conv from patches of training images (speednet), on a fresh start."""

    order = 0

    def __init__(self, images: int) -> None:
        self.images = images

    def on_fit_start(self, ctx: Context) -> None:
        """Set the filters before the first step (a resumed run has its own already)."""
        from cnnlab.models.speed import whitening_init

        layer = getattr(ctx.model, "whiten", None)
        if not isinstance(layer, nn.Conv2d):
            raise CnnlabError("recipe whiten_init=true needs a model with a `whiten` conv (speednet): set whiten_init=false")
        if ctx.state.step > 0:
            return
        data = ctx.train_data
        held = data.resident()
        images = held[: self.images] if held is not None else torch.cat(list(data.sample_batches(count=self.images)))
        if len(images) == 0:
            raise CnnlabError("no readable training images to initialise the whitening layer from: check the data")
        whitening_init(layer, ctx.norm(images.to(ctx.device)))


class ModelEMA(nn.Module):
    """An exponential moving average of a model's weights (Polyak & Juditsky 1992), kept in `module`.

    Parameters move towards the model's by (1 - decay) each step in one fused update with no host
    sync; buffers (BatchNorm statistics) are copied, so the average evaluates with current statistics.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards `model`."""
        torch._foreach_lerp_(list(self.module.parameters()), list(model.parameters()), 1.0 - self.decay)
        self.copy_buffers(model)

    @torch.no_grad()
    def copy_buffers(self, model: nn.Module) -> None:
        """Take the model's buffers (BatchNorm statistics) as they are."""
        for mine, theirs in zip(self.module.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)


class EMA(Callback):
    """Keep an EMA of the weights after every step; validation and testing score the average."""

    order = 5
    checkpoint_key = "ema"

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self.average: ModelEMA | None = None
        self._restored: dict[str, Any] | None = None

    def on_fit_start(self, ctx: Context) -> None:
        """Copy the (initialised) model, or restore the copy a checkpoint kept."""
        self.average = ModelEMA(ctx.model, self.decay)
        if self._restored is not None:
            self.average.load_state_dict(self._restored)
        ctx.scored = self.average.module

    def on_step_end(self, ctx: Context) -> None:
        """Move the average towards the model."""
        self.average.update(ctx.model)

    def on_train_epoch_end(self, ctx: Context) -> None:
        """Take the statistics the ranks agreed on (data-parallel runs broadcast rank 0's)."""
        self.average.copy_buffers(ctx.model)

    def state_dict(self) -> dict[str, Any] | None:
        """Return the average's weights and buffers (keys prefixed module.)."""
        return self.average.state_dict() if self.average is not None else self._restored

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Keep a checkpoint's average until on_fit_start builds the copy."""
        self._restored = state


class EarlyStopping(Callback):
    """Stop when the validation score that decides "best" (the task's) has not improved for `patience` epochs."""

    order = 10

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, ctx: Context, metrics: EpochMetrics, is_best: bool) -> None:
        """Set state.stop_reason once patience runs out."""
        if ctx.state.stale_epochs >= self.patience:
            ctx.state.stop_reason = f"early stopping: no better validation score for {self.patience} epochs"


def recipe_callbacks(recipe: Recipe) -> list[Callback]:
    """Return the callbacks the recipe asks for: whitening init, EMA, early stopping."""
    callbacks: list[Callback] = []
    if recipe.model.whiten_init:
        callbacks.append(WhiteningInit(recipe.model.whiten_images))
    if recipe.optim.ema_decay:
        callbacks.append(EMA(recipe.optim.ema_decay))
    if recipe.schedule.early_stopping_patience:
        callbacks.append(EarlyStopping(recipe.schedule.early_stopping_patience))
    return callbacks


class MetricsCSV(Callback):
    """Append one row per epoch to metrics.csv, once the epoch's checkpoint is safely written.

    After the checkpoint: a failed write (a full disk) leaves no row for weights that were never
    kept, and a kill between the two leaves a checkpoint whose own copy of the row resume appends.
    """

    order = 35

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, ctx: Context, metrics: EpochMetrics, is_best: bool) -> None:
        """Write the epoch's row."""
        append_metrics(self.path, metrics.row())


class Checkpoints(Callback):
    """Keep checkpoints/last after every epoch and checkpoints/best at the best validation score."""

    order = 30

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def on_fit_start(self, ctx: Context) -> None:
        """Keep the starting point (epoch 0) when there is no checkpoint yet: Ctrl-C in epoch 1 resumes from it."""
        if not (self.directory / "last").is_dir():
            ctx.save_checkpoint(self.directory / "last")

    def on_epoch_end(self, ctx: Context, metrics: EpochMetrics, is_best: bool) -> None:
        """Write last (and best when this epoch is the best so far)."""
        ctx.save_checkpoint(self.directory / "last")
        if is_best:
            ctx.save_checkpoint(self.directory / "best")


class TensorBoard(Callback):
    """Write each epoch's metrics as TensorBoard events into the run directory."""

    order = 25

    def __init__(self, run: Path) -> None:
        self.directory = run
        self.writer: Any = None  # opened when training starts: building the callback writes nothing

    def on_fit_start(self, ctx: Context) -> None:
        """Open a new event file in the run directory."""
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.directory))

    @staticmethod
    def available() -> bool:
        """Return whether the tensorboard package is installed (it is an optional extra)."""
        import importlib.util

        return importlib.util.find_spec("tensorboard") is not None

    def on_epoch_end(self, ctx: Context, metrics: EpochMetrics, is_best: bool) -> None:
        """Log every metric of the epoch under its metrics.csv column name."""
        for name, value in metrics.row().items():
            if name != "epoch":
                self.writer.add_scalar(name, value, metrics.epoch)
        self.writer.flush()

    def on_fit_end(self, ctx: Context) -> None:
        """Close the event file (none when an earlier callback's start failed)."""
        if self.writer is not None:
            self.writer.close()


class ProgressBar(Callback):
    """A rich bar over all steps: epoch, step, last loss and hit rate, images/s and ETA."""

    order = 40

    def __init__(self, epochs: int, steps_per_epoch: int, console: object | None = None) -> None:
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]} step {task.fields[step]}/{task.fields[steps]}"),
            BarColumn(), TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console,
        )
        self.epochs, self.steps = epochs, steps_per_epoch
        self.step_in_epoch = 0
        self.every = max(1, steps_per_epoch // 100)  # about 100 redraws an epoch: the bar costs nothing

    def on_fit_start(self, ctx: Context) -> None:
        """Open the bar where the run starts from (after a resume, not at zero)."""
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=self.epochs * self.steps, completed=ctx.state.epoch * self.steps, status="",
            epoch=ctx.state.epoch + 1, epochs=self.epochs, step=0, steps=self.steps,
        )

    def on_step_end(self, ctx: Context) -> None:
        """Advance by one step (the counters only: reading the loss would sync the device)."""
        self.step_in_epoch += 1
        if self.step_in_epoch % self.every == 0 or self.step_in_epoch == self.steps:
            self.progress.update(self.task, completed=ctx.state.epoch * self.steps + self.step_in_epoch,
                                 epoch=ctx.state.epoch + 1, step=self.step_in_epoch)

    def on_epoch_end(self, ctx: Context, metrics: EpochMetrics, is_best: bool) -> None:
        """Show the epoch's loss, hit rates and throughput."""
        self.step_in_epoch = 0
        train = [f"loss {metrics.train['loss']:.3f}"] + [f"train {k} {v:.2%}" for k, v in metrics.train.items() if k != "loss"]
        val = [f"val {k} {v:.2%}" for k, v in metrics.val.items() if k != "loss"]
        self.progress.update(self.task, completed=ctx.state.epoch * self.steps,
                             status="  ".join([*train, *val, f"{metrics.images_per_second:,.0f} img/s"]))

    def on_fit_end(self, ctx: Context) -> None:
        """Close the bar."""
        self.progress.stop()
