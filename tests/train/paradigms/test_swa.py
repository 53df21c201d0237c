"""Stochastic weight averaging: the mean of the epoch-end weights, exact BatchNorm statistics, exact resume."""

from types import SimpleNamespace

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file
from torch import nn

from cnnlab.data.normalise import Normalisation
from cnnlab.errors import CnnlabError
from cnnlab.runs.load import load_run
from cnnlab.runs.recipe import load_recipe
from cnnlab.train.paradigms.swa import StochasticWeightAveraging, recompute_batchnorm
from cnnlab.train.run import train_run
from tests.train.interrupting import interrupt_at_step

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
OVERRIDES = ("epochs=5", "paradigm.swa.start_epoch=3", "deterministic=true", "schedule.name=constant", "optim.lr=0.01")


def test_the_average_is_the_mean_of_the_epoch_end_weights(tmp_path) -> None:
    recipe = load_recipe("digits", ["epochs=4", "paradigm.swa.start_epoch=2"])
    model = nn.Linear(3, 2)
    ctx = SimpleNamespace(model=model, state=SimpleNamespace(epoch=0))
    swa = StochasticWeightAveraging(tmp_path, recipe)
    swa.on_fit_start(ctx)
    seen = []
    for epoch in range(1, 5):
        with torch.no_grad():
            model.weight.normal_()
        ctx.state.epoch = epoch
        swa.on_epoch_end(ctx, None, False)
        if epoch >= 2:
            seen.append(model.weight.clone())
    assert swa.count == 3
    assert torch.allclose(swa.average.weight, torch.stack(seen).mean(0), atol=1e-6)


def test_batchnorm_statistics_are_the_mean_over_the_training_images() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(3))
    with torch.no_grad():
        model[0].running_mean.fill_(5.0)
    images = torch.randint(0, 256, (40, 3, 4, 4), dtype=torch.uint8)
    norm = Normalisation((0.5, 0.4, 0.3), (0.2, 0.2, 0.2))
    recompute_batchnorm(model.eval(), [(images[i : i + 10], None) for i in range(0, 40, 10)], norm)
    assert torch.allclose(model[0].running_mean, norm(images).mean((0, 2, 3)), atol=1e-5)
    assert model[0].momentum == 0.1 and not model.training  # settings and mode restored


@pytest.fixture(scope="module")
def swa_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("swa") / "whole"
    return out, train_run(out=str(out), overrides=OVERRIDES, console=QUIET)


def test_the_run_scores_its_average(swa_run) -> None:
    out, result = swa_run
    assert result["weights"]["checkpoint"] == "swa" and load_run(out).checkpoint == "swa"
    swa, last = (load_file(str(out / "checkpoints" / n / "model.safetensors")) for n in ("swa", "last"))
    assert swa.keys() == last.keys() and not all(torch.equal(swa[k], last[k]) for k in swa)
    assert load_run(out, "last").checkpoint == "last"


def test_resume_continues_the_average_exactly(swa_run, tmp_path, monkeypatch) -> None:
    undo = interrupt_at_step(monkeypatch, 70)  # Ctrl-C in epoch 4 (21 steps an epoch): the average holds epoch 3 only
    with pytest.raises(KeyboardInterrupt):
        train_run(out=str(tmp_path / "part"), overrides=OVERRIDES, console=QUIET)
    undo()
    assert not (tmp_path / "part" / "checkpoints" / "swa").exists()  # not written before the run finished
    train_run(resume=str(tmp_path / "part"), console=QUIET)
    a = load_file(str(swa_run[0] / "checkpoints" / "swa" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "checkpoints" / "swa" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_swa_settings_that_cannot_work_get_one_line(tmp_path) -> None:
    with pytest.raises(CnnlabError, match=r"start_epoch \(9\) must be at most epochs \(5\)"):
        load_recipe("digits", ["epochs=5", "paradigm.swa.start_epoch=9"])
    plain = tmp_path / "plain"
    train_run(out=str(plain), overrides=("epochs=1",), console=QUIET)
    with pytest.raises(CnnlabError, match="has no swa checkpoint"):
        load_run(plain, "swa")
