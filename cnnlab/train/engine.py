"""A short, explicit training loop for data held in memory as uint8 tensors.

This is the foundation's minimal loop (whole data set on one device, AdamW, one-cycle schedule);
the training issue grows it into the full engine with callbacks, mixed precision and resume.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data.sources import ImageSet
from cnnlab.errors import CnnlabError
from cnnlab.train.optim import parameter_groups


@dataclass(frozen=True)
class FitConfig:
    """Settings of the minimal loop."""

    epochs: int = 30  # full passes over the training set
    batch_size: int = 64  # images per step
    lr: float = 3e-3  # peak learning rate of the one-cycle schedule (Smith & Topin 2017)
    weight_decay: float = 5e-4  # decoupled (AdamW), never on biases or norm parameters
    label_smoothing: float = 0.0  # Szegedy et al. 2016; 0 = plain cross-entropy
    seed: int = 0  # initialisation, shuffling and dropout

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise CnnlabError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not self.lr > 0:
            raise CnnlabError(f"lr must be > 0, got {self.lr}")


@dataclass(frozen=True)
class EpochResult:
    """Metrics of one epoch, one row of metrics.csv."""

    epoch: int  # 1-based
    train_loss: float  # mean cross-entropy over the epoch's steps
    train_acc: float  # top-1 on the training batches, in training mode, fraction
    test_loss: float
    test_acc: float  # top-1 on the held-out set, fraction
    lr: float  # learning rate at the end of the epoch
    seconds: float  # wall time of the training steps of this epoch
    images_per_second: float


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and std of the training images, in 0..1 units."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, images: torch.Tensor) -> Normalisation:
        """Return the per-channel statistics of uint8 images (N, C, H, W)."""
        x = images.float() / 255.0
        return cls(tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist()))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images.float() / 255.0 - mean) / std


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageSet, norm: Normalisation, batch_size: int = 512) -> tuple[float, float]:
    """Return (mean loss, top-1 accuracy) of `model` on `data`; restores the model's mode after."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(data), batch_size):
        x = norm(data.images[start : start + batch_size])
        y = data.labels[start : start + batch_size]
        logits = model(x)
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(dim=1) == y).sum().item()
    model.train(was_training)
    return total_loss / len(data), correct / len(data)


def fit(
    model: nn.Module,
    train: ImageSet,
    test: ImageSet,
    config: FitConfig,
    on_epoch: Callable[[EpochResult], None] | None = None,
) -> list[EpochResult]:
    """Train `model` on `train` and return one EpochResult per epoch, tested on `test` after each."""
    torch.manual_seed(config.seed)
    norm = Normalisation.of(train.images)
    optimiser = torch.optim.AdamW(parameter_groups(model, config.weight_decay), lr=config.lr)
    steps_per_epoch = -(-len(train) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch
    )
    shuffle = torch.Generator().manual_seed(config.seed)
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(train), generator=shuffle)
        loss_sum, correct = 0.0, 0
        for start in range(0, len(train), config.batch_size):
            index = order[start : start + config.batch_size]
            x = norm(train.images[index])  # (B, C, H, W) float
            y = train.labels[index]
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            loss_sum += loss.item() * len(index)
            correct += (logits.argmax(dim=1) == y).sum().item()
        seconds = time.perf_counter() - started
        test_loss, test_acc = evaluate(model, test, norm)
        result = EpochResult(
            epoch=epoch,
            train_loss=loss_sum / len(train),
            train_acc=correct / len(train),
            test_loss=test_loss,
            test_acc=test_acc,
            lr=schedule.get_last_lr()[0],
            seconds=seconds,
            images_per_second=len(train) / seconds,
        )
        history.append(result)
        if on_epoch is not None:
            on_epoch(result)
    return history
