"""The training loop: one screen of named events, ordered callbacks, a typed state, exact resume.

Data sit on the training device as uint8 and are normalised and augmented in whole batches.
Everything the next step depends on (weights, optimiser, scheduler, scaler, EMA, RNG streams,
counters) is in the checkpoint, so with `deterministic=true` a run stopped after epoch k and
resumed ends with the same weights and metrics as one that never stopped.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data.loader import StreamedImages
from cnnlab.data.sources import ImageSet
from cnnlab.errors import CnnlabError
from cnnlab.models.base import AuxOutput
from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.train.distributed import Distributed
from cnnlab.train.optim import build_optimizer, build_plateau, build_scheduler
from cnnlab.train.recipe import TTA, AugmentConfig, Precision, Recipe


@dataclass(frozen=True)
class Normalisation:
    """Per-channel mean and std of the training images, in 0..1 units."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, batches: torch.Tensor | Iterable[torch.Tensor]) -> Normalisation:
        """Return the per-channel statistics of uint8 images (N, C, H, W), given whole or in batches."""
        total = total_sq = None
        count = 0
        # float64 sums batch by batch: exact enough, and never a float copy of the whole set.
        for images in [batches] if isinstance(batches, torch.Tensor) else batches:
            x = images.double() / 255.0
            sums, squares = x.sum(dim=(0, 2, 3)), x.square().sum(dim=(0, 2, 3))
            total = sums if total is None else total + sums
            total_sq = squares if total_sq is None else total_sq + squares
            count += images.shape[0] * images.shape[2] * images.shape[3]
        if total is None or count < 2:
            raise CnnlabError("no training images to compute the normalisation from: check the data spec")
        mean = total / count
        std = ((total_sq - count * mean.square()) / (count - 1)).clamp_min(1e-12).sqrt()
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        scale, shift = _affine(self.mean, self.std, images.device)
        return torch.addcmul(shift, images.float(), scale)  # (x/255 - mean)/std as one multiply-add


@functools.lru_cache(maxsize=16)
def _affine(mean: tuple[float, ...], std: tuple[float, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (scale, shift) of uint8 -> normalised, made once per device: no copy per batch."""
    scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, -1, 1, 1)
    shift = torch.tensor([-m / s for m, s in zip(mean, std, strict=True)]).view(1, -1, 1, 1)
    return scale.to(device), shift.to(device)


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


@dataclass
class TrainState:
    """Counters the loop and its callbacks share; saved with every checkpoint."""

    epoch: int = 0  # completed epochs
    step: int = 0  # completed optimiser steps
    best_val_loss: float = math.inf
    best_val_acc: float = 0.0
    stale_epochs: int = 0  # epochs since the validation loss last improved
    stop_reason: str | None = None  # set by a callback (early stopping) to end training


@dataclass(frozen=True)
class EpochMetrics:
    """One row of metrics.csv."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    val_top5: float
    lr: float
    seconds: float
    images_per_second: float


class Callback:
    """Hooks called at named events, in ascending `order`."""

    order = 0

    def on_fit_start(self, state: TrainState) -> None:
        """Called once before the first epoch (also after a resume)."""

    def on_step_end(self, state: TrainState) -> None:
        """Called after every optimiser step, with no host sync: only the counters are new."""

    def on_epoch_end(self, state: TrainState, metrics: EpochMetrics, is_best: bool) -> None:
        """Called after validation at the end of every epoch."""

    def on_fit_end(self, state: TrainState) -> None:
        """Called once when training ends, however it ends."""


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved for `patience` epochs."""

    order = 10

    def __init__(self, patience: int) -> None:
        self.patience = patience

    def on_epoch_end(self, state: TrainState, metrics: EpochMetrics, is_best: bool) -> None:
        """Set state.stop_reason once patience runs out."""
        if state.stale_epochs >= self.patience:
            state.stop_reason = f"early stopping: validation loss flat for {self.patience} epochs"


def augment_batch(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Return a flipped / translated / cut-out copy of a normalised batch (B, C, H, W).

    `generator` lives on the batch's device, so nothing crosses to the host.
    """
    batch, _, height, width = x.shape
    device = x.device
    if config.flip:
        flip = torch.rand(batch, generator=generator, device=device) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    if config.crop_padding:
        pad = config.crop_padding
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=device)
        dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator, device=device)
        rows = (dy.view(-1, 1) + torch.arange(height, device=device)).view(batch, 1, height, 1)
        cols = (dx.view(-1, 1) + torch.arange(width, device=device)).view(batch, 1, 1, width)
        index = torch.arange(batch, device=device).view(-1, 1, 1, 1)
        x = padded[index, torch.arange(x.shape[1], device=device).view(1, -1, 1, 1), rows, cols]
    if config.cutout:
        cy = torch.randint(0, height, (batch,), generator=generator, device=device).view(-1, 1, 1, 1)
        cx = torch.randint(0, width, (batch,), generator=generator, device=device).view(-1, 1, 1, 1)
        ys = torch.arange(height, device=device).view(1, 1, -1, 1)
        xs = torch.arange(width, device=device).view(1, 1, 1, -1)
        half = config.cutout // 2
        inside = ((ys - cy).abs() <= half) & ((xs - cx).abs() <= half)
        x = x.masked_fill(inside, 0.0)
    return x


def _loss(out: torch.Tensor | AuxOutput, y: torch.Tensor, recipe: Recipe) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (loss, main logits); auxiliary heads add aux_loss_weight times their loss."""
    logits = out.logits if isinstance(out, AuxOutput) else out
    loss = F.cross_entropy(logits, y, label_smoothing=recipe.label_smoothing)
    for aux in getattr(out, "aux", ()):
        loss = loss + recipe.aux_loss_weight * F.cross_entropy(aux, y, label_smoothing=recipe.label_smoothing)
    return loss, logits


def tta_views(x: torch.Tensor, mode: TTA | str = TTA.NONE) -> list[torch.Tensor]:
    """Return the test-time views of a batch (B, C, H, W): itself, plus mirror and/or 1-pixel shifts."""
    mode = TTA(mode)
    views = [x]
    if mode in (TTA.FLIP, TTA.FLIP_SHIFT):
        views.append(x.flip(3))
    if mode in (TTA.SHIFT, TTA.FLIP_SHIFT):
        height, width = x.shape[2:]
        # Zero borders, as the training translations pad (zero is the mean after normalisation).
        padded = F.pad(x, (1, 1, 1, 1))
        views.append(padded[:, :, 0:height, 0:width])  # content moves 1 down and right
        source = padded if mode is TTA.SHIFT else F.pad(x.flip(3), (1, 1, 1, 1))
        views.append(source[:, :, 2 : height + 2, 2 : width + 2])  # (the mirror) moves 1 up and left
    return views


@torch.no_grad()
def evaluate(
    model: nn.Module, data: ImageSet | StreamedImages, norm: Normalisation, batch_size: int = 512,
    tta: TTA | str = TTA.NONE,
) -> tuple[float, float, float]:
    """Return (mean loss, top-1, top-5) of `model` on `data` (logits averaged over `tta` views); mode restored."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    top1 = torch.zeros((), device=device)
    top5 = torch.zeros((), device=device)
    count = 0
    for images, y in data.batches(torch.arange(len(data)).split(batch_size), device):
        if not len(y):
            continue  # a streamed batch of unreadable files
        x = norm(images)
        logits = torch.stack([model(view) for view in tta_views(x, tta)]).float().mean(0)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        ranked = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (B, k)
        top1 += (ranked[:, 0] == y).sum()
        top5 += (ranked == y[:, None]).any(dim=1).sum()
        count += len(y)  # unreadable streamed images are left out of the count too
    model.train(was_training)
    n = max(count, 1)
    return loss_sum.item() / n, top1.item() / n, top5.item() / n


@dataclass
class Trainer:
    """The objects one run trains with; `fit` runs it, `checkpoint`/`resume` save and restore it."""

    model: nn.Module
    recipe: Recipe
    train_data: ImageSet | StreamedImages  # resident on the device, or read by DataLoader workers
    val_data: ImageSet | StreamedImages
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    callbacks: Sequence[Callback] = ()
    state: TrainState = field(default_factory=TrainState)
    dist: Distributed = field(default_factory=Distributed)

    def __post_init__(self) -> None:
        recipe = self.recipe
        if recipe.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.model.to(self.device)
        if recipe.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.norm = Normalisation.of(self.train_data.sample_batches())
        self.resident = isinstance(self.train_data, ImageSet)
        # Where training batches come from: the set itself on the device (uint8 stays small), or the workers.
        self.source = ImageSet(
            self.train_data.images.to(self.device), self.train_data.labels.to(self.device), self.train_data.classes
        ) if self.resident else self.train_data
        if recipe.whiten_init:
            self.whiten()  # before the optimiser and the EMA copy the weights
        if recipe.batch_size < self.dist.world_size:
            raise CnnlabError(
                f"batch_size {recipe.batch_size} is smaller than the {self.dist.world_size} processes sharing each "
                f"batch: use batch_size >= {self.dist.world_size}"
            )
        self.steps_per_epoch = -(-len(self.train_data) // recipe.batch_size)
        self.optimizer = build_optimizer(self.model, recipe.optim)
        self.scheduler = build_scheduler(self.optimizer, recipe.schedule, self.steps_per_epoch, recipe.epochs)
        self.plateau = build_plateau(self.optimizer, recipe.schedule)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=recipe.precision is Precision.FP16)
        self.ema = ModelEMA(self.model, recipe.ema_decay) if recipe.ema_decay else None
        # Every rank draws the same global order; each augments its own share with its own stream.
        self.generator = torch.Generator().manual_seed(recipe.seed)
        # On the training device: random numbers drawn there need no copy (and no sync) per step.
        # Reseeded from (seed, rank, epoch) every epoch, so resume needs no device-specific state.
        self.augment_generator = torch.Generator(self.device)
        # Training steps go through the (wrapped, compiled) module; weights and checkpoints stay on self.model.
        forward: nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            forward = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        # Static shapes: a partial last batch gets its own graph instead of turning every batch dynamic.
        self.forward = torch.compile(forward, dynamic=False) if recipe.compile else forward
        self._step_callbacks: list[Callback] = []

    def whiten(self, count: int = 5000) -> None:
        """Initialise the model's `whiten` conv from patches of up to `count` training images (data-dependent)."""
        from cnnlab.models.speed import whitening_init

        layer = getattr(self.model, "whiten", None)
        if not isinstance(layer, nn.Conv2d):
            raise CnnlabError("recipe whiten_init=true needs a model with a `whiten` conv (speednet): set whiten_init=false")
        images = self.source.images[:count] if self.resident else torch.cat(list(self.train_data.sample_batches(count=count)))
        if len(images) == 0:
            raise CnnlabError("no readable training images to initialise the whitening layer from: check the data")
        whitening_init(layer, self.norm(images.to(self.device)))

    @property
    def scored_model(self) -> nn.Module:
        """Return the weights validation and testing score: the EMA average when kept, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def _train_epoch(self) -> tuple[float, float]:
        """Run one epoch of optimiser steps; return (mean loss, accuracy) of its batches."""
        loss_sum, correct, seen, first_bad = self._train_steps()
        if self.dist.enabled:
            # Each rank updated BatchNorm statistics from its own share; rank 0's become everyone's,
            # so validation, early stopping and the plateau schedule decide the same on all ranks.
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer, src=0)
            if self.ema is not None:
                self.ema.copy_buffers(self.model)
        # The epoch's one host sync: totals over all ranks, and the NaN check.
        totals = self.dist.all_reduce(torch.stack([loss_sum, correct, torch.full((), float(seen), device=self.device)]))
        self.dist.all_reduce(first_bad, op=torch.distributed.ReduceOp.MAX)
        if first_bad.item() >= 0:
            raise CnnlabError(
                f"loss became NaN or infinite in epoch {self.state.epoch + 1} at step {first_bad.item()}: "
                "lower the learning rate or use grad_clip; the last good checkpoint is kept"
            )
        return totals[0].item() / totals[2].item(), totals[1].item() / totals[2].item()

    def _train_steps(self) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
        """Run the epoch's steps; return (loss sum, correct, images, first bad step) with no host sync."""
        recipe, model = self.recipe, self.model
        stream = ((recipe.seed * 1_000_003 + self.dist.rank) * 1_000_003 + self.state.epoch) % (1 << 63)  # any seed fits
        self.augment_generator.manual_seed(stream)
        dtype = {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}.get(recipe.precision)
        order = torch.randperm(len(self.train_data), generator=self.generator)
        if self.resident:
            order = order.to(self.device)  # indices too stay on the device: no per-step copies
        shares = []
        for start in range(0, len(order), recipe.batch_size):
            index = order[start : start + recipe.batch_size]
            if self.dist.enabled:
                if len(index) < self.dist.world_size:
                    break  # a last batch too small to give every rank an image
                index = index[self.dist.rank :: self.dist.world_size]  # this rank's share of the global batch
            shares.append(index)
        batches = self.source.batches(shares, self.device)
        # One slot per step, written on the device; summed once at the end (no sync, few small ops).
        losses = torch.zeros(len(shares), device=self.device)
        corrects = torch.zeros(len(shares), device=self.device, dtype=torch.long)
        sizes: list[int] = []
        first_step = self.state.step
        autocast = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        model.train()
        for images, y in batches:
            if not self.resident:
                empty = len(y) == 0  # every image of this share unreadable
                if self.dist.enabled:  # then every rank skips the step, so DDP's collectives stay paired
                    flag = torch.full((), float(empty), device=self.device)
                    empty = bool(self.dist.all_reduce(flag, op=torch.distributed.ReduceOp.MAX).item())
                if empty:
                    continue
            x = augment_batch(self.norm(images), recipe.augment, self.augment_generator)
            if recipe.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                loss, logits = _loss(self.forward(x), y, recipe)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if recipe.optim.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), recipe.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(model)
            losses[len(sizes)] = loss.detach()
            corrects[len(sizes)] = (logits.argmax(dim=1) == y).sum()
            sizes.append(len(y))
            self.state.step += 1
            for callback in self._step_callbacks:
                callback.on_step_end(self.state)
        done = len(sizes)
        weights = torch.tensor(sizes, dtype=torch.float32).to(self.device, non_blocking=True)
        bad = ~torch.isfinite(losses[:done])
        first_bad = torch.where(bad.any(), first_step + bad.int().argmax(), -1) if done else torch.tensor(-1)
        return (losses[:done] * weights).sum(), corrects[:done].sum().float(), sum(sizes), first_bad.to(self.device)

    def fit(self) -> TrainState:
        """Train until the recipe's epochs are done or a callback stops it; return the final state."""
        callbacks = sorted(self.callbacks, key=lambda c: c.order)
        # Only callbacks that override the per-step hook are called per step.
        self._step_callbacks = [c for c in callbacks if type(c).on_step_end is not Callback.on_step_end]
        for callback in callbacks:
            callback.on_fit_start(self.state)
        try:
            while self.state.epoch < self.recipe.epochs and self.state.stop_reason is None:
                started = time.perf_counter()
                train_loss, train_acc = self._train_epoch()
                seconds = time.perf_counter() - started
                val_loss, val_acc, val_top5 = evaluate(self.scored_model, self.val_data, self.norm)
                if self.plateau is not None:
                    self.plateau.step(val_loss)
                self.state.epoch += 1
                is_best = val_loss < self.state.best_val_loss
                if is_best:
                    self.state.best_val_loss, self.state.best_val_acc, self.state.stale_epochs = val_loss, val_acc, 0
                else:
                    self.state.stale_epochs += 1
                metrics = EpochMetrics(
                    self.state.epoch, train_loss, train_acc, val_loss, val_acc, val_top5,
                    self.optimizer.param_groups[0]["lr"], seconds, len(self.train_data) / seconds,
                )
                for callback in callbacks:
                    callback.on_epoch_end(self.state, metrics, is_best)
        finally:
            for callback in callbacks:
                callback.on_fit_end(self.state)
        return self.state

    def training_state(self) -> dict[str, Any]:
        """Return every tensor and value the next step depends on, for a checkpoint."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "plateau": self.plateau.state_dict() if self.plateau is not None else None,
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng_torch": torch.get_rng_state(),
            "rng_loop": self.generator.get_state(),
            "counters": asdict(self.state),
        }

    def checkpoint(self, directory: Path) -> None:
        """Write the model and the whole training state to a checkpoint directory."""
        info = {"epoch": self.state.epoch, "step": self.state.step, "recipe_hash": self.recipe.digest()}
        save_checkpoint(directory, self.model, self.training_state(), info)

    def resume(self, directory: Path) -> None:
        """Restore model, optimiser, scheduler, scaler, EMA, RNG streams and counters from a checkpoint."""
        state, info = load_checkpoint(directory, self.model)
        if info.get("recipe_hash") != self.recipe.digest():
            raise CnnlabError(f"{directory} was written with another recipe: resume with the run's own recipe.yaml")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.plateau is not None and state["plateau"] is not None:
            self.plateau.load_state_dict(state["plateau"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        torch.set_rng_state(state["rng_torch"])
        self.generator.set_state(state["rng_loop"])
        # Whatever stopped the run before (Ctrl-C, a stop request) is what resume undoes.
        self.state = TrainState(**{**state["counters"], "stop_reason": None})
