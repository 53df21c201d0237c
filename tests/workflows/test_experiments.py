"""Experiments: budgets in steps, one run directory per arm, finished arms kept, interrupted ones resumed, claims."""

import json

import pytest
import torch
from rich.console import Console

from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.workflows.experiments import EXPERIMENTS, Arm, Budget, Claim, Experiment, run_experiment

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
TINY = Experiment(
    name="tiny", description="two learning rates on digits", data="digits", recipe="digits",
    arms=(Arm("fast", "small_cnn", ("optim.lr=0.003",)), Arm("slow", "small_cnn", ("optim.lr=0.00001",))),
    budgets={"default": Budget(steps=40, train_images=640, batch_size=64)},
    claims=(Claim("the faster rate trains further", lambda rows: rows["fast"]["train_loss"] < rows["slow"]["train_loss"]),),
)


def test_budgets_are_steps_on_a_stated_subset() -> None:
    budget = EXPERIMENTS["degradation"].budgets["default"]
    assert (budget.steps_per_epoch(), budget.epochs()) == (50, 5)  # 6,400 images of 128: 250 steps exactly
    assert Budget(steps=100, train_images=1000).epochs() == 13  # 8 steps an epoch: 104 steps, the first >= 100
    assert "data.train_images=6400" in budget.overrides()


def test_arms_become_runs_and_the_table_checks_the_claim(tmp_path) -> None:
    table = run_experiment(TINY, tmp_path / "tiny", console=QUIET)
    rows = {row["arm"]: row for row in table["arms"]}
    for name in ("fast", "slow"):
        summary = json.loads((tmp_path / "tiny" / name / "summary.json").read_text())
        assert rows[name]["test_top1"] == summary["test_top1"] and summary["epochs"] == 4  # 10 steps an epoch
    assert table["budget"] == {"steps": 40, "train_images": 640, "batch_size": 64, "epochs": 4}
    assert table["claims"] == [{"claim": "the faster rate trains further", "holds": True}]
    assert "**holds**" in (tmp_path / "tiny" / "table.md").read_text()
    finished = (tmp_path / "tiny" / "fast" / "summary.json").stat().st_mtime_ns
    (tmp_path / "tiny" / "slow" / "summary.json").unlink()  # as if killed after its last checkpoint
    again = run_experiment(TINY, tmp_path / "tiny", console=QUIET)
    assert (tmp_path / "tiny" / "fast" / "summary.json").stat().st_mtime_ns == finished  # kept, not retrained
    assert [r["test_top1"] for r in again["arms"]] == [r["test_top1"] for r in table["arms"]]  # resumed: the same end


def test_degradation_claims_read_the_training_losses() -> None:
    claims = EXPERIMENTS["degradation"].claims
    rows = {"plain20": {"train_loss": 1.64}, "plain56": {"train_loss": 2.15}, "resnet20": {"train_loss": 1.5},
            "resnet56": {"train_loss": 1.4}}
    assert [c.holds(rows) for c in claims] == [True, True]
    rows["plain56"]["train_loss"] = 1.0
    assert [c.holds(rows) for c in claims] == [False, False]


def test_bad_requests_get_one_line(tmp_path, capsys) -> None:
    assert main(["experiment", "nothing"]) == 2
    assert "argument NAME: 'nothing' is not one of ablation, degradation" in capsys.readouterr().err
    assert main(["experiment", "degradation", "--steps", "10"]) == 2
    assert "--steps and --train-images go together" in capsys.readouterr().err
    with pytest.raises(CnnlabError, match="has budgets default, not 'huge'"):
        run_experiment(TINY, tmp_path / "x", "huge", console=QUIET)


def test_an_arm_of_another_budget_is_refused_not_mixed_in(tmp_path) -> None:
    run_experiment(TINY, tmp_path / "tiny", console=QUIET)
    with pytest.raises(CnnlabError, match="was trained with another budget, seed, data or model"):
        run_experiment(TINY, tmp_path / "tiny", Budget(steps=20, train_images=640, batch_size=64), console=QUIET)
    with pytest.raises(CnnlabError, match="another budget, seed"):
        run_experiment(TINY, tmp_path / "tiny", seed=1, console=QUIET)


DIGITS_TRANSFER = Experiment(
    name="digits-transfer", description="digits 0-4 to 5-9, frozen and fine-tuned", data="digits", recipe="digits",
    arms=(Arm("baseA", "lenet5", ("data.input_size=32",), "@0-4"), Arm("baseB", "lenet5", ("data.input_size=32",), "@5-9"),
          Arm("A2B", "lenet5", ("data.input_size=32", "paradigm.finetune.layers=2", "paradigm.finetune.freeze_until=conv2"),
              "@5-9", "baseA")),
    budgets={"default": Budget(steps=20, train_images=320, batch_size=32)},
    claims=(),
)


def test_arms_of_their_own_data_and_a_source_arm(tmp_path) -> None:
    table = run_experiment(DIGITS_TRANSFER, tmp_path / "t", console=QUIET)
    assert [row["data"] for row in table["arms"]] == ["digits@0-4", "digits@5-9", "digits@5-9"]
    recipe = (tmp_path / "t" / "A2B" / "recipe.yaml").read_text()
    assert str((tmp_path / "t" / "baseA").resolve()) in recipe
    info = json.loads((tmp_path / "t" / "A2B" / "data.json").read_text())
    assert info["spec"] == "digits@5-9" and info["classes"] == list("56789")
    from cnnlab.models.registry import create_model
    from cnnlab.runs.checkpoint import load_checkpoint

    source, frozen = create_model("lenet5", num_classes=5), create_model("lenet5", num_classes=5)
    load_checkpoint(tmp_path / "t" / "baseA" / "checkpoints" / "last", source)
    load_checkpoint(tmp_path / "t" / "A2B" / "checkpoints" / "last", frozen)
    assert torch.equal(source.conv2.conv.weight, frozen.conv2.conv.weight)  # copied and frozen
    assert not torch.equal(source.fc1.weight, frozen.fc1.weight)  # not copied: trained afresh


def test_the_course_experiments_claims_by_hand() -> None:
    ablation = EXPERIMENTS["ablation"].claims
    rows = {"base": {"test_top1": 0.40}, "bn": {"test_top1": 0.50}, "bn+aug": {"test_top1": 0.48},
            "bn+aug+reg": {"test_top1": 0.49}}
    assert [c.holds(rows) for c in ablation] == [True, False, True]
    shuffled = EXPERIMENTS["shuffled-pixels"].claims
    rows = {"mlp": {"test_top1": 0.980}, "mlp-permuted": {"test_top1": 0.978}, "cnn": {"test_top1": 0.990},
            "cnn-permuted": {"test_top1": 0.960}}
    assert [c.holds(rows) for c in shuffled] == [True, True, True]
    rows["mlp-permuted"]["test_top1"] = 0.97
    assert not shuffled[0].holds(rows)
    transfer = EXPERIMENTS["transferability"]
    assert [a.name for a in transfer.arms] == ["baseA", "baseB", "A1B", "A1B+", "A2B", "A2B+", "A3B", "A3B+", "A4B", "A4B+"]
    rows = {a.name: {"test_top1": 0.99} for a in transfer.arms}
    rows["A4B"]["test_top1"] = 0.95
    assert [c.holds(rows) for c in transfer.claims] == [True, True]
    rows["A2B+"]["test_top1"] = 0.98
    assert [c.holds(rows) for c in transfer.claims] == [False, True]
    # Every arm's recipe resolves at every budget, and the budgets are whole steps on stated subsets.
    from cnnlab.runs.recipe import load_recipe

    for experiment in EXPERIMENTS.values():
        for budget in experiment.budgets.values():
            for arm in experiment.arms:
                load_recipe(experiment.recipe, (*budget.overrides(), *arm.overrides))
    assert EXPERIMENTS["ablation"].budgets["default"].overrides()[1] == "batch_size=32"
