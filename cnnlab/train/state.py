"""What the training loop shares with its callbacks: counters, an epoch's metrics, a typed context."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from cnnlab.data.collection import Images
from cnnlab.data.normalise import Normalisation


@dataclass
class TrainState:
    """Counters the loop and its callbacks share; saved with every checkpoint."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimiser steps
    best: dict[str, float] = field(default_factory=dict)  # validation scores of the best epoch so far
    best_epoch: int = 0  # 0 = none yet
    stale_epochs: int = 0  # epochs since the task's validation score last improved
    seconds: float = 0.0  # training and validation time of every epoch so far, over all resumed segments
    stop_reason: str | None = None  # set by a callback (early stopping) to end training
    last_row: dict[str, float] = field(default_factory=dict)  # metrics.csv row of the last finished epoch

    @classmethod
    def from_counters(cls, counters: dict[str, Any]) -> TrainState:
        """Return the state a checkpoint saved; first-release counters (best_val_loss, best_val_acc) too."""
        counters = dict(counters)
        if "best_val_loss" in counters:
            loss, acc = counters.pop("best_val_loss"), counters.pop("best_val_acc", 0.0)
            counters["best"] = {} if math.isinf(loss) else {"loss": loss, "acc": acc}
        return cls(**counters)


@dataclass(frozen=True)
class EpochMetrics:
    """One epoch's training and validation figures: one row of metrics.csv."""

    epoch: int
    train: dict[str, float]  # loss and the task's hit rate over the epoch's batches
    val: dict[str, float]  # loss and the task's metrics on the validation split ({} without one)
    lr: float
    seconds: float  # the optimiser steps and the closing sync; validation excluded
    images_per_second: float

    def row(self) -> dict[str, float]:
        """Return the metrics.csv row: epoch, train_*, val_*, lr, seconds, images_per_second."""
        return {
            "epoch": self.epoch,
            **{f"train_{k}": v for k, v in self.train.items()},
            **{f"val_{k}": v for k, v in self.val.items()},
            "lr": self.lr, "seconds": self.seconds, "images_per_second": self.images_per_second,
        }


@dataclass
class Context:
    """What every callback receives: the loop's state and the objects it trains with."""

    state: TrainState
    model: nn.Module  # the weights being trained (never a DDP or compiled wrapper)
    optimizer: torch.optim.Optimizer
    train_data: Images  # as the steps read it (resident: on the device)
    norm: Normalisation
    device: torch.device
    run: Path | None  # the run directory, when there is one
    save_checkpoint: Callable[[Path], None]  # writes model and training state to a checkpoint directory
    scored: nn.Module | None = None  # what validation scores: the model, or its EMA copy once the EMA callback sets it

    @property
    def scored_model(self) -> nn.Module:
        """Return the weights validation and testing score."""
        return self.scored if self.scored is not None else self.model


class Callback:
    """Hooks called at named events, in ascending `order`; `checkpoint_key` names state it saves."""

    order: ClassVar[int] = 0
    checkpoint_key: ClassVar[str | None] = None  # key of state_dict() in the checkpoint, if it has state

    def on_fit_start(self, ctx: Context) -> None:
        """Called once before the first epoch (also after a resume)."""

    def on_step_end(self, ctx: Context) -> None:
        """Called after every optimiser step, with no host sync: only the counters are new."""

    def on_train_epoch_end(self, ctx: Context) -> None:
        """Called after the epoch's steps (and the ranks' BatchNorm broadcast), before validation."""

    def on_epoch_end(self, ctx: Context, metrics: EpochMetrics, is_best: bool) -> None:
        """Called after validation at the end of every epoch."""

    def on_fit_end(self, ctx: Context) -> None:
        """Called once when training ends, however it ends."""

    def state_dict(self) -> dict[str, Any] | None:
        """Return the state a checkpoint keeps under checkpoint_key."""
        return None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Restore what state_dict returned (called by resume, before on_fit_start)."""
