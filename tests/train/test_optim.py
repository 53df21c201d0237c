"""Optimisers and schedules against hand computations."""

import math

import pytest
import torch
from torch import nn

from cnnlab.runs.recipe import OptimConfig, OptimizerName, ScheduleConfig, ScheduleName
from cnnlab.train.optim import (
    build_optimizer,
    build_plateau,
    build_scheduler,
    lr_factor,
    parameter_groups,
)


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


def test_no_decay_on_biases_and_norms() -> None:
    decay, no_decay = parameter_groups(_net(), 5e-4)
    assert [p.shape for p in decay["params"]] == [(2, 1, 3, 3), (3, 32)]
    assert len(no_decay["params"]) == 4 and no_decay["weight_decay"] == 0.0  # conv bias, BN w/b, fc bias


def _first_step_by_hand(name: OptimizerName, p: torch.Tensor, g: torch.Tensor, lr: float, wd: float) -> torch.Tensor:
    """Return a decayed weight after one step, from each optimiser's paper (state starts at zero)."""
    if name is OptimizerName.SGD:  # Polyak momentum: the buffer starts as the gradient itself
        return p - lr * (g + wd * p)
    if name is OptimizerName.ADAM:  # Kingma & Ba: bias-corrected m / sqrt(v) is g / |g| on step one
        grad = g + wd * p
        return p - lr * grad / (grad.abs() + 1e-8)
    if name is OptimizerName.ADAMW:  # Loshchilov & Hutter: decay the weight, then Adam on the plain gradient
        return p * (1 - lr * wd) - lr * g / (g.abs() + 1e-8)
    grad = g + wd * p  # RMSprop (Hinton's lecture 6e), alpha 0.99, momentum 0.9 on an empty buffer
    return p - lr * grad / ((0.01 * grad.square()).sqrt() + 1e-8)


@pytest.mark.parametrize("name", list(OptimizerName))
def test_every_optimizer_takes_its_papers_first_step(name: OptimizerName) -> None:
    lr, wd = 0.01, 0.05
    model = _net()
    optimizer = build_optimizer(model, OptimConfig(name=name, lr=lr, weight_decay=wd))
    model(torch.randn(4, 1, 6, 6)).sum().backward()
    weight, grad = model[0].weight.detach().clone(), model[0].weight.grad.clone()
    optimizer.step()
    torch.testing.assert_close(model[0].weight, _first_step_by_hand(name, weight, grad, lr, wd), rtol=1e-5, atol=1e-6)


def test_decoupled_decay_for_sgd_by_hand() -> None:
    # One plain SGD step with decoupled decay: p <- p (1 - lr wd) - lr g; biases are not decayed.
    lr, wd = 0.1, 0.5
    model = _net()
    optimizer = build_optimizer(model, OptimConfig(lr=lr, momentum=0.0, weight_decay=wd, decoupled=True))
    model(torch.randn(4, 1, 6, 6)).sum().backward()
    weight, bias = model[0].weight.detach().clone(), model[0].bias.detach().clone()
    grad_w, grad_b = model[0].weight.grad.clone(), model[0].bias.grad.clone()
    optimizer.step()
    torch.testing.assert_close(model[0].weight, weight * (1 - lr * wd) - lr * grad_w)
    torch.testing.assert_close(model[0].bias, bias - lr * grad_b)


def test_nesterov_without_momentum_is_refused() -> None:
    from cnnlab.errors import CnnlabError

    with pytest.raises(CnnlabError, match="nesterov needs"):
        build_optimizer(_net(), OptimConfig(nesterov=True, momentum=0.0))


def test_coupled_decay_for_sgd_by_hand() -> None:
    lr, wd = 0.1, 0.5
    model = _net()
    optimizer = build_optimizer(model, OptimConfig(lr=lr, momentum=0.0, weight_decay=wd))
    model(torch.randn(4, 1, 6, 6)).sum().backward()
    weight, grad = model[0].weight.detach().clone(), model[0].weight.grad.clone()
    optimizer.step()
    torch.testing.assert_close(model[0].weight, weight - lr * (grad + wd * weight))


def test_schedule_factors_by_hand() -> None:
    cosine = ScheduleConfig(name=ScheduleName.COSINE, warmup_epochs=1)
    assert lr_factor(cosine, 0, 10, 11) == pytest.approx(0.1)  # first warm-up step
    assert lr_factor(cosine, 9, 10, 11) == pytest.approx(1.0)  # warm-up reaches the peak
    assert lr_factor(cosine, 10 + 50, 10, 11) == pytest.approx(0.5)  # half way through the cosine
    step = ScheduleConfig(name=ScheduleName.STEP, step_size=30, gamma=0.1)
    assert [lr_factor(step, e * 10, 10, 90) for e in (0, 29, 30, 60)] == pytest.approx([1, 1, 0.1, 0.01])
    multi = ScheduleConfig(name=ScheduleName.MULTISTEP, milestones=(91, 136))
    assert [lr_factor(multi, e, 1, 182) for e in (90, 91, 136)] == pytest.approx([1, 0.1, 0.01])
    one = ScheduleConfig(name=ScheduleName.ONECYCLE)
    assert lr_factor(one, 0, 10, 10) == pytest.approx(0.04)
    assert lr_factor(one, 30, 10, 10) == pytest.approx(1.0)
    assert lr_factor(one, 65, 10, 10) == pytest.approx(0.5)
    assert lr_factor(ScheduleConfig(name=ScheduleName.CONSTANT), 123, 10, 20) == 1.0


def test_scheduler_drives_the_optimizer() -> None:
    model = _net()
    optimizer = build_optimizer(model, OptimConfig(lr=0.2))
    scheduler = build_scheduler(optimizer, ScheduleConfig(name=ScheduleName.COSINE), steps_per_epoch=4, epochs=2)
    lrs = []
    for _ in range(8):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.2) and lrs[4] == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_plateau_divides_by_ten_after_patience() -> None:
    model = _net()
    optimizer = build_optimizer(model, OptimConfig(lr=0.1))
    plateau = build_plateau(optimizer, ScheduleConfig(name=ScheduleName.PLATEAU, patience=2))
    for loss in (1.0, 1.0, 1.0, 1.0):
        plateau.step(loss)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    assert build_plateau(optimizer, ScheduleConfig()) is None
