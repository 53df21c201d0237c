"""The training loop: one screen of named events, ordered callbacks with a typed context, exact resume.

The engine trains a Task (cnnlab.train.tasks): it never says "class" or "pixel". Data sit on
the training device as uint8 and are normalised and augmented there in whole batches
(cnnlab.data). Everything the next step depends on (weights, optimiser, scheduler, scaler, EMA,
RNG streams, counters) is in the checkpoint, so with `deterministic=true` a run stopped after
epoch k and resumed ends with the same weights and metrics as one that never stopped. Nothing
process-global is left changed once `fit` returns.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.attacks import fgsm, pgd
from cnnlab.data.augment import Augmentation, augment_batch
from cnnlab.data.collection import Images
from cnnlab.data.normalise import Normalisation
from cnnlab.data.sources import ImageSet
from cnnlab.data.tta import Views
from cnnlab.errors import CnnlabError
from cnnlab.runs.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.runs.recipe import Adversary, Precision, Recipe, ScheduleName
from cnnlab.train.callbacks import recipe_callbacks
from cnnlab.train.distributed import Distributed
from cnnlab.train.evaluation import check_views, evaluate
from cnnlab.train.optim import build_optimizer, build_plateau, build_scheduler
from cnnlab.train.paradigms.finetune import Freezing, lr_scales
from cnnlab.train.state import Callback, Context, EpochMetrics, TrainState
from cnnlab.train.tasks import Classification, Task

Data = Images


def steps_per_epoch(images: int, batch_size: int) -> int:
    """Return the optimiser steps one epoch of `images` takes: the last batch may be short, never dropped."""
    return -(-images // batch_size)


@dataclass
class Trainer:
    """The objects one run trains with; `fit` runs it, `checkpoint`/`resume` save and restore it."""

    model: nn.Module
    recipe: Recipe
    train_data: Data  # resident on the device, or read by DataLoader workers
    val_data: Data | None  # None: no validation split (then "best" means nothing and last is scored)
    task: Task | None = None  # default: classification over the training set's classes
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    callbacks: Sequence[Callback] = ()  # besides the recipe's own (whitening, EMA, early stopping)
    state: TrainState = field(default_factory=TrainState)
    dist: Distributed = field(default_factory=Distributed)
    run: Path | None = None
    # Fixed input statistics (a fine-tuned source's, deck 004); None: measured on the training set.
    normalisation: Normalisation | None = None

    def __post_init__(self) -> None:
        recipe = self.recipe
        if recipe.batch_size < self.dist.world_size:
            raise CnnlabError(
                f"batch_size {recipe.batch_size} is smaller than the {self.dist.world_size} processes sharing each "
                f"batch: use batch_size >= {self.dist.world_size}"
            )
        if self.val_data is None and (recipe.schedule.early_stopping_patience or recipe.schedule.name is ScheduleName.PLATEAU):
            raise CnnlabError("early stopping and the plateau schedule need a validation split: set val_fraction > 0")
        self.task = self.task or Classification(len(self.train_data.classes), recipe.loss)
        self.task.check(recipe)
        self.model.to(self.device)
        if recipe.runtime.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.norm = self.normalisation or Normalisation.of(self.train_data.sample_batches())
        self.task.attach(self.norm, self.device)
        self.augmentation = self._augmentation()
        facts = self.augmentation.facts
        # Before the first step, not after the last: a view the head cannot take would fail only when scoring.
        check_views(self.model, (facts.channels, facts.height, facts.width), recipe.evaluation.views())
        self.resident = isinstance(self.train_data, ImageSet)
        # Where training batches come from: the set itself on the device (uint8 stays small), or the workers.
        self.source = self.train_data.to(self.device) if self.resident else self.train_data
        self.steps_per_epoch = steps_per_epoch(len(self.train_data), recipe.batch_size)
        self.optimizer = build_optimizer(self.model, recipe.optim, lr_scales(self.model, recipe.paradigm.finetune))
        self.scheduler = build_scheduler(self.optimizer, recipe.schedule, self.steps_per_epoch, recipe.epochs)
        self.plateau = build_plateau(self.optimizer, recipe.schedule)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=recipe.runtime.precision is Precision.FP16)
        # Every rank draws the same global order; each augments its own share with its own stream.
        self.generator = torch.Generator().manual_seed(recipe.seed)
        # On the training device: random numbers drawn there need no copy (and no sync) per step.
        # Reseeded from (seed, rank, epoch) every epoch, so resume needs no device-specific state.
        self.augment_generator = torch.Generator(self.device)
        self.forward = self._wrap(self.model)
        freezing = [Freezing(recipe.paradigm.finetune)] if recipe.paradigm.finetune.freeze_until else []
        self.callbacks = sorted([*recipe_callbacks(recipe), *freezing, *self.callbacks], key=lambda c: c.order)
        self.context = Context(self.state, self.model, self.optimizer, self.source, self.norm, self.device,
                               self.run, self.checkpoint)

    def _augmentation(self) -> Augmentation:
        """Return the recipe's ops checked against the training images, before any step runs."""
        recipe = self.recipe
        augmentation = Augmentation.for_data(recipe.augment, self.train_data, self.norm, self.task.num_classes)
        height, width = augmentation.facts.height, augmentation.facts.width
        crop = recipe.evaluation.crop
        tested = (height, width) if crop is None else (crop, crop)  # what validation and test views measure
        if augmentation.output_size() != tested:
            size = "x".join(map(str, augmentation.output_size()))
            fix = (f"set evaluation.crop={augmentation.output_size()[0]} so that they are cut to it too"
                   if crop is None and size == f"{augmentation.output_size()[0]}x{augmentation.output_size()[0]}"
                   else f"make evaluation.crop the size augment trains at ({size})")
            raise CnnlabError(f"augment makes the {height}x{width} training images {size}, but validation and test "
                              f"views are {tested[0]}x{tested[1]}: {fix}")
        if augmentation.mixes and recipe.adversarial.method is not Adversary.NONE:
            raise CnnlabError("augment mixup/cutmix gives soft targets, which adversarial training cannot attack: "
                              "leave one of them out")
        return augmentation

    def _wrap(self, model: nn.Module) -> nn.Module:
        """Return the module training steps call: DDP-wrapped and compiled as the recipe says."""
        forward: nn.Module = model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            forward = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        # Static shapes: a partial last batch gets its own graph instead of turning every batch dynamic.
        return torch.compile(forward, dynamic=False) if self.recipe.runtime.compile else forward

    @property
    def scored_model(self) -> nn.Module:
        """Return the weights validation and testing score: the EMA average when kept, else the model."""
        return self.context.scored_model

    @contextlib.contextmanager
    def session(self) -> Iterator[Context]:
        """Run on_fit_start on entry and on_fit_end on exit; the deterministic flag is restored after."""
        previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
        if self.recipe.runtime.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.context.state = self.state
        try:
            for callback in self.callbacks:
                callback.on_fit_start(self.context)
            yield self.context
        finally:
            try:
                for callback in self.callbacks:
                    callback.on_fit_end(self.context)
            finally:
                torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])

    def fit(self) -> TrainState:
        """Train until the recipe's epochs are done or a callback stops it; return the final state."""
        with self.session():
            while self.state.epoch < self.recipe.epochs and self.state.stop_reason is None:
                self.run_epoch()
        return self.state

    def run_epoch(self) -> EpochMetrics:
        """Train one epoch, validate, keep the best, and call every callback's on_epoch_end."""
        started = time.perf_counter()
        train = self.train_epoch()
        seconds = time.perf_counter() - started
        val = self.validate()
        if self.plateau is not None:
            self.plateau.step(val["loss"])
        is_best = bool(val) and self.task.is_better(val, self.state.best)
        if is_best:
            self.state.best, self.state.best_epoch, self.state.stale_epochs = val, self.state.epoch, 0
        else:
            self.state.stale_epochs += 1
        metrics = EpochMetrics(self.state.epoch, train, val, self.optimizer.param_groups[0]["lr"], seconds,
                               len(self.train_data) / seconds)
        self.state.seconds += time.perf_counter() - started
        self.state.last_row = metrics.row()  # checkpointed with the epoch, so resume can mend metrics.csv
        for callback in self.callbacks:
            callback.on_epoch_end(self.context, metrics, is_best)
        return metrics

    def validate(self) -> dict[str, float]:
        """Return the loss and the task's metrics of the scored weights on the validation split ({} without one)."""
        if self.val_data is None:
            return {}
        views = Views(crop=self.recipe.evaluation.crop)  # the centre crop when training crops; no TTA while training
        return evaluate(self.scored_model, self.val_data, self.norm, self.task, views,
                        batch_size=self.recipe.evaluation.batch_size).result()

    def train_epoch(self) -> dict[str, float]:
        """Run one epoch of optimiser steps; return the mean loss and hit rate of its batches."""
        loss_sum, hits, seen, units, first_bad = self._steps()
        if self.dist.enabled:
            # Each rank updated BatchNorm statistics from its own share; rank 0's become everyone's,
            # so validation, early stopping and the plateau schedule decide the same on all ranks.
            for buffer in self.model.buffers():
                torch.distributed.broadcast(buffer, src=0)
        for callback in self.callbacks:
            callback.on_train_epoch_end(self.context)
        # The epoch's one host sync: totals over all ranks, and the NaN check.
        counts = torch.tensor([float(seen), float(units)]).to(self.device)
        totals = self.dist.all_reduce(torch.cat([torch.stack([loss_sum, hits]), counts]))
        self.dist.all_reduce(first_bad, op=torch.distributed.ReduceOp.MAX)
        if first_bad.item() >= 0:
            raise CnnlabError(
                f"loss became NaN or infinite in epoch {self.state.epoch + 1} at step {first_bad.item()}: "
                "lower the learning rate or use grad_clip; the last good checkpoint is kept"
            )
        if totals[2].item() == 0:
            raise CnnlabError(f"epoch {self.state.epoch + 1} found no readable training image: check the data's files")
        self.state.epoch += 1
        # A detector that predicts nothing while training (torchvision's) counts no hits: its rate is NaN, not a figure.
        predicted = totals[3].item()
        return {"loss": totals[0].item() / totals[2].item(),
                self.task.train_metric: totals[1].item() / predicted if predicted else float("nan")}

    def _shares(self) -> list[torch.Tensor]:
        """Return this rank's index tensor of each step of the epoch (one seeded global order)."""
        order = torch.randperm(len(self.train_data), generator=self.generator)
        if self.resident:
            # Indices too stay on the device, so no step copies. A blocking copy would make the host
            # wait for the GPU's queue once an epoch; an asynchronous one from pageable memory is staged
            # by the driver before it returns, so `order` may be freed at once.
            order = order.to(self.device, non_blocking=True)
        shares = []
        for start in range(0, len(order), self.recipe.batch_size):
            index = order[start : start + self.recipe.batch_size]
            if self.dist.enabled:
                if len(index) < self.dist.world_size:
                    break  # a last batch too small to give every rank an image
                index = index[self.dist.rank :: self.dist.world_size]  # this rank's share of the global batch
            shares.append(index)
        return shares

    def _skip(self, y: torch.Tensor) -> bool:
        """Return whether to skip a streamed step whose images were all unreadable (on every rank alike)."""
        if self.resident:
            return False
        empty = len(y) == 0
        if self.dist.enabled:  # then every rank skips the step, so DDP's collectives stay paired
            flag = torch.full((), float(empty), device=self.device)
            empty = bool(self.dist.all_reduce(flag, op=torch.distributed.ReduceOp.MAX).item())
        return empty

    def _steps(self) -> tuple[torch.Tensor, torch.Tensor, int, int | torch.Tensor, torch.Tensor]:
        """Run the epoch's steps; return (loss sum, hits, images, predictions, first bad step) with no host sync."""
        recipe, model, task = self.recipe, self.model, self.task
        stream = ((recipe.seed * 1_000_003 + self.dist.rank) * 1_000_003 + self.state.epoch) % (1 << 63)  # any seed fits
        self.augment_generator.manual_seed(stream)
        dtype = {Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}.get(recipe.runtime.precision)
        shares = self._shares()
        # One slot per step, written on the device; summed once at the end (no sync, few small ops).
        losses = torch.zeros(len(shares), device=self.device)
        hits = torch.zeros(len(shares), device=self.device, dtype=torch.long)
        sizes: list[int] = []
        units: int | torch.Tensor = 0  # a detector's objects are counted on the device: one sync an epoch
        first_step = self.state.step
        autocast = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        model.train()
        for images, y in self.source.batches(shares, self.device):
            if self._skip(y):
                continue
            x, y = augment_batch(self.augmentation, images, y, self.norm, self.augment_generator)
            x = self._adversarial(x, y)
            if recipe.runtime.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = task.batch_targets(x, y)  # a teacher's soft targets join the labels here
            with autocast:
                loss, logits = task.loss(self.forward(x), y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if recipe.optim.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), recipe.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            losses[len(sizes)] = loss.detach()
            correct, predictions = task.hits(logits, y)
            hits[len(sizes)] = correct
            sizes.append(len(y))
            units += predictions
            self.state.step += 1
            for callback in self.callbacks:
                callback.on_step_end(self.context)
        done = len(sizes)
        weights = torch.tensor(sizes, dtype=torch.float32).to(self.device, non_blocking=True)
        bad = ~torch.isfinite(losses[:done])
        first_bad = torch.where(bad.any(), first_step + bad.int().argmax(), -1) if done else torch.tensor(-1)
        return (losses[:done] * weights).sum(), hits[:done].sum().float(), sum(sizes), units, first_bad.to(self.device)

    def _adversarial(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the normalised batch replaced by attacks on it (Madry et al. 2018), or as it is without one."""
        setting = self.recipe.adversarial
        if setting.method is Adversary.NONE:
            return x
        mean = torch.tensor(self.norm.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        std = torch.tensor(self.norm.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
        pixels = (x * std + mean).clamp(0, 1)
        common = {"mean": self.norm.mean, "std": self.norm.std, "batch_size": len(x), "validate": False}
        eps = setting.eps * min(1.0, (self.state.epoch + 1) / setting.warmup_epochs) if setting.warmup_epochs else setting.eps
        # Crafted in eval mode, so the attack's forward passes leave BatchNorm's running statistics alone.
        self.model.eval()
        try:
            if setting.method is Adversary.FGSM:
                adversarial = fgsm(self.model, pixels, y, eps, **common)
            else:
                # The random start is seeded by the step, so a resumed run draws the same starts.
                step = None if setting.step_size is None else setting.step_size * eps / max(setting.eps, 1e-12)
                adversarial = pgd(self.model, pixels, y, eps, steps=setting.steps, step_size=step,
                                  norm=setting.norm.value, random_start=setting.random_start,
                                  seed=(self.recipe.seed * 1_000_003 + self.state.step) % (1 << 63), **common)
        finally:
            self.model.train()
        return (adversarial - mean) / std

    def training_state(self) -> dict[str, Any]:
        """Return every tensor and value the next step depends on, for a checkpoint."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "plateau": self.plateau.state_dict() if self.plateau is not None else None,
            "scaler": self.scaler.state_dict(),
            "ema": None,  # replaced by the EMA callback's state when the run keeps one
            **{c.checkpoint_key: c.state_dict() for c in self.callbacks if c.checkpoint_key},
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
        if info.get("recipe_hash") not in (self.recipe.digest(), self.recipe.legacy_digest()):
            raise CnnlabError(f"{directory} was written with another recipe: resume with the run's own recipe.yaml")
        try:
            self._restore(state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            raise CnnlabError(f"{directory}/state.json does not hold this run's training state ({type(error).__name__}: "
                              f"{str(error)[:120]}): the checkpoint is damaged") from None

    def _restore(self, state: dict[str, Any]) -> None:
        """Put a checkpoint's training state into the optimiser, schedulers, callbacks, RNGs and counters."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.plateau is not None and state["plateau"] is not None:
            self.plateau.load_state_dict(state["plateau"])
        self.scaler.load_state_dict(state["scaler"])
        for callback in self.callbacks:
            if callback.checkpoint_key:
                callback.load_state_dict(state.get(callback.checkpoint_key))
        torch.set_rng_state(state["rng_torch"])
        self.generator.set_state(state["rng_loop"])
        # Whatever stopped the run before (Ctrl-C, a stop request) is what resume undoes.
        self.state = TrainState.from_counters({**state["counters"], "stop_reason": None})
        self.context.state = self.state
