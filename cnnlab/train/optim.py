"""Optimisers with the course's weight-decay rule, and learning-rate schedules as pure functions.

Weight decay goes on weight matrices and kernels only, never on biases and normalisation
parameters (decaying a BatchNorm scale only fights the normalisation). The schedule's
per-step factor is a pure function, so its numbers can be checked by hand.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.runs.recipe import OptimConfig, OptimizerName, ScheduleConfig, ScheduleName


def parameter_groups(model: nn.Module, weight_decay: float, lr: float | None = None,
                     lr_scales: dict[int, float] | None = None) -> list[dict[str, Any]]:
    """Return optimiser groups: decay on weight matrices and kernels, none on biases and norms (and per-stage rates).

    With `lr_scales` ({id(parameter): factor}, fine-tuning's discriminative rates) each factor gets
    its own pair of groups at lr * factor; parameters not named train at lr.
    """
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {(True, 1.0): [], (False, 1.0): []}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        # Biases and norm scales are 1-D; decaying them only fights the normalisation.
        scale = (lr_scales or {}).get(id(param), 1.0)
        groups.setdefault((param.ndim > 1, scale), []).append(param)
    result = []
    for (decays, scale), params in groups.items():
        if params or scale == 1.0:
            group: dict[str, Any] = {"params": params, "weight_decay": weight_decay if decays else 0.0}
            if lr_scales is not None and lr is not None:
                group["lr"] = lr * scale
            result.append(group)
    return result


def _decay_before_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    """Shrink each weight by lr * wd before the update: decoupled decay for any optimiser."""
    with torch.no_grad():
        for group in optimizer.param_groups:
            rate = group["lr"] * group.get("decoupled_weight_decay", 0.0)
            if rate:
                for param in group["params"]:
                    if param.grad is not None:  # a frozen weight (fine-tuning) is not decayed either
                        param.mul_(1.0 - rate)


def build_optimizer(model: nn.Module, config: OptimConfig, lr_scales: dict[int, float] | None = None) -> torch.optim.Optimizer:
    """Return the optimiser a recipe names, with decay only on weights (coupled or decoupled), and per-stage rates if given."""
    groups = parameter_groups(model, config.weight_decay, config.lr, lr_scales)
    if config.decoupled:
        for group in groups:
            group["decoupled_weight_decay"], group["weight_decay"] = group["weight_decay"], 0.0
    if config.nesterov and (config.name is not OptimizerName.SGD or config.momentum <= 0):
        raise CnnlabError("optim.nesterov needs optim.name=sgd and optim.momentum > 0")
    # Fused kernels exist for CUDA tensors; elsewhere the default (foreach) implementation runs.
    fused = {"fused": True} if config.fused and all(p.is_cuda for g in groups for p in g["params"]) else {}
    if config.name is OptimizerName.SGD:
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov, **fused
        )
    elif config.name is OptimizerName.ADAM:
        optimizer = torch.optim.Adam(groups, lr=config.lr, **fused)
    elif config.name is OptimizerName.ADAMW:
        # AdamW is decoupled by definition; its own weight_decay already does lr * wd * p.
        optimizer = torch.optim.AdamW(groups, lr=config.lr, **fused)
    else:
        optimizer = torch.optim.RMSprop(groups, lr=config.lr, momentum=config.momentum)
    if config.decoupled and config.name is not OptimizerName.ADAMW:
        optimizer.register_step_pre_hook(_decay_before_step)
    return optimizer


def lr_factor(config: ScheduleConfig, step: int, steps_per_epoch: int, epochs: int) -> float:
    """Return the multiplier of the peak learning rate at optimiser step `step` (0-based)."""
    total = steps_per_epoch * epochs
    if config.name is ScheduleName.ONECYCLE:
        # Smith & Topin 2017, linear form: from the peak times onecycle_start up to the peak over
        # the first onecycle_peak_at of the steps, then down to zero; it has its own warm-up, so
        # warmup_epochs is not used.
        progress, peak, start = step / max(total, 1), config.onecycle_peak_at, config.onecycle_start
        if progress < peak:
            return start + (1.0 - start) * progress / peak
        return max(1.0 - (progress - peak) / (1.0 - peak), 0.0)
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return (step + 1) / warmup  # linear warm-up, reaching the peak at its last step
    epoch = step / steps_per_epoch
    if config.name in (ScheduleName.CONSTANT, ScheduleName.PLATEAU):
        return 1.0  # plateau decays from validation results, outside this function
    if config.name is ScheduleName.STEP:
        return config.gamma ** int(epoch // config.step_size)
    if config.name is ScheduleName.MULTISTEP:
        return config.gamma ** sum(1 for m in config.milestones if epoch >= m)
    progress = (step - warmup) / max(total - warmup, 1)  # cosine (Loshchilov & Hutter 2017)
    if config.name is ScheduleName.CYCLIC:
        # Huang et al. 2017, eq. 2: the cosine restarted at every cycle, ending each near zero.
        cycle = max(total, 1) / config.cycles  # whole epochs: epochs are a multiple of the cycles, and no warm-up
        progress = ((step - warmup) % cycle) / cycle if step < total else 1.0
    floor = config.final_lr_fraction
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: ScheduleConfig, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Return a per-step scheduler following lr_factor (step it after every optimiser step)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(config, step, steps_per_epoch, epochs)
    )


def build_plateau(optimizer: torch.optim.Optimizer, config: ScheduleConfig) -> torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    """Return the epoch-level reduce-on-plateau scheduler for schedule 'plateau', else None."""
    if config.name is not ScheduleName.PLATEAU:
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=config.gamma, patience=config.patience)
