"""Training health: gradient norms of the real steps, activation statistics of a probe batch, resume."""

import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from cnnlab.data.sources import ImageSet, load
from cnnlab.models.small import small_cnn
from cnnlab.runs.recipe import load_recipe
from cnnlab.train.diagnostics import (
    Diagnostics,
    activation_statistics,
    read_diagnostics,
    weighted_layers,
)
from cnnlab.train.engine import Trainer
from cnnlab.train.state import Callback


def _no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks for m in model.modules())


class HandNorms(Callback):
    """An independent reference: each weight gradient's norm with torch.linalg, summed on the host per epoch."""

    order = 1

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self.sums: dict[str, float] = {}
        self.steps = 0

    def on_step_end(self, ctx) -> None:
        for name, module in ctx.model.named_modules():
            weight = module._parameters.get("weight")
            if weight is not None and weight.ndim >= 2:
                self.sums[name] = self.sums.get(name, 0.0) + torch.linalg.vector_norm(weight.grad).item()
        self.steps += 1

    def on_train_epoch_end(self, ctx) -> None:
        self.epochs.append({k: v / self.steps for k, v in self.sums.items()})
        self.sums, self.steps = {}, 0


def test_gradient_norms_are_the_steps_own_mean_per_layer() -> None:
    splits = load("digits")
    torch.manual_seed(0)
    recipe = load_recipe("default", ["epochs=2", "batch_size=128", "schedule.warmup_epochs=0"])
    hand, diagnostics = HandNorms(), Diagnostics(None, probe_images=64)
    model = small_cnn(width=8)
    Trainer(model, recipe, splits.train, splits.test, callbacks=[hand, diagnostics]).fit()
    assert [line["epoch"] for line in diagnostics.history] == [1, 2]
    names = [name for name, _ in weighted_layers(model)]
    assert names and all("norm" not in name for name in names)  # convs and the linear, not BatchNorm scales
    for line, reference in zip(diagnostics.history, hand.epochs, strict=True):
        assert list(line["grad_norm"]) == list(reference)
        for name, value in reference.items():
            assert line["grad_norm"][name] == pytest.approx(value, rel=1e-5)
        assert line["probe_images"] == 64
    assert _no_hooks(model) and model.training


def test_activation_statistics_by_hand_and_the_model_left_as_it_came() -> None:
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, -1.0]))  # channel 1 = -x - 1 < 0 on x >= 0: dead everywhere
    model = nn.Sequential(conv, nn.BatchNorm2d(2, affine=False), nn.ReLU())
    model[1].running_mean.fill_(0.0)
    model[1].running_var.fill_(1.0)
    images = torch.rand(5, 1, 4, 4)
    images[:, :, 0, 0] = 0.0  # one position of channel 0 never fires either
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = activation_statistics(model, images)
    out = torch.relu(conv(images) / (1 + 1e-5) ** 0.5).detach()  # eval-mode BatchNorm with mean 0, var 1
    assert list(stats) == ["2"]
    assert stats["2"]["mean"] == pytest.approx(out.mean().item(), rel=1e-5)
    assert stats["2"]["std"] == pytest.approx(out.std().item(), rel=1e-5)
    assert stats["2"]["dead"] == pytest.approx((16 + 1) / 32)  # all of channel 1 and one unit of channel 0
    assert model.training and _no_hooks(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # running stats did not move


def test_a_reused_activation_gets_a_line_per_call_and_convs_stand_in_without_any() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1)
            self.act = nn.ReLU()

        def forward(self, x):
            return self.act(self.conv(self.act(x)))

    assert list(activation_statistics(Twice(), torch.rand(2, 1, 3, 3))) == ["act", "act#2"]
    functional = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 3))
    assert list(activation_statistics(functional, torch.rand(2, 1, 3, 3))) == ["0", "2"]


def test_resume_drops_the_lines_of_epochs_it_repeats(tmp_path) -> None:
    path = tmp_path / "diagnostics.jsonl"
    path.write_text("".join(json.dumps({"epoch": e, "grad_norm": {}, "activations": {}}) + "\n" for e in (1, 2, 3)))
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    data = ImageSet(torch.zeros(4, 1, 5, 5, dtype=torch.uint8), torch.zeros(4, dtype=torch.long), ("a",))
    ctx = SimpleNamespace(model=model, device=torch.device("cpu"), norm=lambda x: x.float() / 255, train_data=data,
                          state=SimpleNamespace(epoch=2))
    callback = Diagnostics(path)
    callback.on_fit_start(ctx)
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2]
    callback.on_train_epoch_end(ctx)
    callback.on_epoch_end(ctx, SimpleNamespace(epoch=3), False)
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2, 3]
    path.write_text(path.read_text() + '{"epoch": 4, "grad_n')  # a kill mid-line
    assert [line["epoch"] for line in read_diagnostics(tmp_path)] == [1, 2, 3]


def test_a_step_with_overflowed_gradients_is_left_out_of_the_mean() -> None:
    """An fp16 step the scaler skipped leaves inf gradients behind: the mean is over the steps taken."""
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU())
    data = ImageSet(torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ("a",))
    ctx = SimpleNamespace(model=model, device=torch.device("cpu"), norm=lambda x: x.float(), train_data=data,
                          state=SimpleNamespace(epoch=0))
    callback = Diagnostics(None)
    callback.on_fit_start(ctx)
    for value in (3.0, float("inf"), 5.0):
        model[0].weight.grad = torch.full_like(model[0].weight, value)
        callback.on_step_end(ctx)
    callback.on_train_epoch_end(ctx)
    callback.on_epoch_end(ctx, SimpleNamespace(epoch=1), False)
    assert callback.history[0]["grad_norm"] == {"0": 4.0}
