"""Snapshot ensembles: Huang et al.'s cyclic cosine step by step, one snapshot per cycle, exact resume."""

import math

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from cnnlab.errors import CnnlabError
from cnnlab.runs.recipe import ScheduleConfig, ScheduleName, load_recipe
from cnnlab.train.optim import lr_factor
from cnnlab.train.paradigms.snapshot import snapshots_of
from cnnlab.train.run import train_run
from cnnlab.workflows.ensemble import evaluate_ensemble
from tests.train.interrupting import interrupt_at_step

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
OVERRIDES = ("epochs=6", "schedule.name=cyclic", "schedule.cycles=3", "paradigm.snapshot.enabled=true", "deterministic=true")


def test_snapshot_cifar_recipe_and_its_standard_run() -> None:
    # The README's claim compares the recipe with itself under Huang et al.'s standard schedule.
    recipe = load_recipe("snapshot-cifar")
    assert (recipe.epochs, recipe.schedule.name, recipe.schedule.cycles) == (50, ScheduleName.CYCLIC, 5)
    assert recipe.paradigm.snapshot.enabled and recipe.schedule.warmup_epochs == 0
    standard = load_recipe("snapshot-cifar", ["schedule.name=multistep", "schedule.milestones=[25,37]",
                                              "paradigm.snapshot.enabled=false"])
    assert standard.schedule.milestones == (25, 37) and not standard.paradigm.snapshot.enabled
    # Both arms take the same 3,950 steps (79 per epoch for 10,000 images in batches of 128); the
    # snapshots close the 10-epoch cycles, where eq. 2 is at its minimum.
    config, steps = recipe.schedule, math.ceil(recipe.data.train_images / recipe.batch_size)
    assert steps * recipe.epochs == 3_950
    ends = [epoch * steps - 1 for epoch in (10, 20, 30, 40, 50)]
    assert all(lr_factor(config, t, steps, recipe.epochs) < 1e-3 for t in ends)
    assert all(lr_factor(config, t + 1, steps, recipe.epochs) == 1.0 for t in ends[:-1])


def _weights(run, name):
    return load_file(str(run / "checkpoints" / name / "model.safetensors"))


def test_cyclic_schedule_is_huangs_equation_two() -> None:
    config = ScheduleConfig(name=ScheduleName.CYCLIC, cycles=3)
    steps_per_epoch, epochs = 7, 6  # 42 steps, cycles of 14
    for t in range(42):
        # Huang et al. 2017, eq. 2: alpha0 / 2 * (cos(pi * mod(t, T / M) / (T / M)) + 1)
        expected = 0.5 * (math.cos(math.pi * (t % 14) / 14) + 1)
        assert lr_factor(config, t, steps_per_epoch, epochs) == pytest.approx(expected, abs=1e-12), t
    assert lr_factor(config, 42, steps_per_epoch, epochs) == 0.0
    one = ScheduleConfig(name=ScheduleName.CYCLIC, cycles=1)
    cosine = ScheduleConfig(name=ScheduleName.COSINE)
    assert all(lr_factor(one, t, 7, 6) == lr_factor(cosine, t, 7, 6) for t in range(43))


@pytest.fixture(scope="module")
def snapshot_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("snapshots") / "whole"
    train_run(out=str(out), overrides=OVERRIDES, console=QUIET)
    return out


def test_one_snapshot_per_cycle_and_their_ensemble(snapshot_run) -> None:
    assert snapshots_of(snapshot_run) == ["snapshot-1", "snapshot-2", "snapshot-3"]
    last, third = _weights(snapshot_run, "last"), _weights(snapshot_run, "snapshot-3")
    assert all(torch.equal(last[k], third[k]) for k in last)  # the last cycle ends with the run
    first = _weights(snapshot_run, "snapshot-1")
    assert not all(torch.equal(first[k], third[k]) for k in first)
    result = evaluate_ensemble([snapshot_run], snapshots=True)
    assert [m["checkpoint"] for m in result["members"]] == ["snapshot-1", "snapshot-2", "snapshot-3"]
    assert result["images"] == 359


def test_resume_between_cycles_writes_the_same_snapshots(snapshot_run, tmp_path, monkeypatch) -> None:
    undo = interrupt_at_step(monkeypatch, 70)  # Ctrl-C in epoch 4 (21 steps an epoch): after snapshot-1, before snapshot-2
    with pytest.raises(KeyboardInterrupt):
        train_run(out=str(tmp_path / "part"), overrides=OVERRIDES, console=QUIET)
    undo()
    assert snapshots_of(tmp_path / "part") == ["snapshot-1"]
    train_run(resume=str(tmp_path / "part"), console=QUIET)
    for name in snapshots_of(snapshot_run):
        a, b = _weights(snapshot_run, name), _weights(tmp_path / "part", name)
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_a_snapshot_left_retired_by_a_kill_mid_swap_is_put_back(snapshot_run, tmp_path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(snapshot_run, run)
    # A kill between the two renames of a rewrite leaves only .snapshot-2-retired, whole.
    (run / "checkpoints" / "snapshot-2").rename(run / "checkpoints" / ".snapshot-2-retired")
    assert snapshots_of(run) == ["snapshot-1", "snapshot-2", "snapshot-3"]
    a, b = _weights(snapshot_run, "snapshot-2"), _weights(run, "snapshot-2")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (run / "checkpoints" / ".snapshot-2-retired").exists()
    assert len(evaluate_ensemble([run], snapshots=True)["members"]) == 3


def test_snapshot_recipes_that_cannot_work_get_one_line(tmp_path) -> None:
    with pytest.raises(CnnlabError, match="set schedule.name=cyclic"):
        load_recipe("digits", ["paradigm.snapshot.enabled=true"])
    with pytest.raises(CnnlabError, match=r"epochs \(7\) must be a multiple of schedule.cycles \(3\)"):
        load_recipe("digits", ["epochs=7", "schedule.name=cyclic", "schedule.cycles=3"])
    plain = tmp_path / "plain"
    train_run(out=str(plain), overrides=("epochs=1",), console=QUIET)
    with pytest.raises(CnnlabError, match="holds no snapshots"):
        evaluate_ensemble([plain], snapshots=True)


def test_cyclic_refusals() -> None:
    with pytest.raises(CnnlabError, match="cyclic has no warm-up"):
        load_recipe("digits", ["epochs=6", "schedule.name=cyclic", "schedule.cycles=3", "schedule.warmup_epochs=1"])
    with pytest.raises(CnnlabError, match="at least two cycles"):
        load_recipe("digits", ["schedule.name=cyclic", "paradigm.snapshot.enabled=true"])
    with pytest.raises(CnnlabError, match="evaluation.weights=swa needs the average"):
        load_recipe("digits", ["evaluation.weights=swa"])
