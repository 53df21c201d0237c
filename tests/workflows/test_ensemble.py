"""Ensembles: the mean of the members' probabilities by hand, each member as `cnnlab eval` scores it, refusals."""

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.runs.load import load_run
from cnnlab.train.evaluation import evaluate_run
from cnnlab.train.run import train_run
from cnnlab.workflows.ensemble import evaluate_ensemble

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("members")
    runs = []
    for i, lr in enumerate((0.01, 0.02, 0.03)):  # one seed: digits draws its test split by the seed
        train_run(out=str(root / f"m{i}"), overrides=("epochs=2", f"optim.lr={lr}", "evaluation.tta=flip" if i == 2 else "seed=0"),
                  console=QUIET)
        runs.append(root / f"m{i}")
    return runs


def test_ensemble_is_the_mean_probability_of_its_members(members) -> None:
    result = evaluate_ensemble(members)
    runs = [load_run(m) for m in members]
    test = runs[0].test_split()
    images, labels = test.images, test.labels
    with torch.no_grad():
        mean = torch.stack([r.model(r.normalisation(images)).softmax(1) if r.recipe.evaluation.tta.value == "none"
                            else (r.model(r.normalisation(images)) + r.model(r.normalisation(images).flip(3))).div(2).softmax(1)
                            for r in runs]).mean(0)
    assert round(result["top1"] * len(labels)) == (mean.argmax(1) == labels).sum().item()
    nll = -mean.gather(1, labels[:, None]).log().mean().item()
    assert result["loss"] == pytest.approx(nll, rel=1e-5)
    assert result["images"] == len(labels) == 359
    for member, path in zip(result["members"], members, strict=True):
        alone = evaluate_run(path)  # the one scoring path: a member scores as cnnlab eval scores it
        assert member["top1"] == alone["top1"] and member["loss"] == pytest.approx(alone["loss"], rel=1e-6)
    assert result["best_member_top1"] == max(m["top1"] for m in result["members"])


def test_members_must_match(members, tmp_path) -> None:
    with pytest.raises(CnnlabError, match="at least two runs"):
        evaluate_ensemble(members[:1])
    with pytest.raises(CnnlabError, match="named twice"):
        evaluate_ensemble([members[0], members[0]])
    other_seed = tmp_path / "seed1"
    train_run(out=str(other_seed), overrides=("epochs=1", "seed=1"), console=QUIET)
    with pytest.raises(CnnlabError, match="hold out different test images"):
        evaluate_ensemble([members[0], other_seed])
    seg = tmp_path / "seg"
    train_run(data="digits-seg", out=str(seg), overrides=("epochs=1",), console=QUIET)
    with pytest.raises(CnnlabError, match="segmentation run"):
        evaluate_ensemble([members[0], seg])


def test_cli_scores_an_ensemble_and_leaves_the_members_alone(members, tmp_path, capsys) -> None:
    before = [sorted(p.name for p in m.iterdir()) for m in members]
    out = tmp_path / "ensemble"
    assert main(["eval", *map(str, members), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ensemble of 3 models" in printed and "best member" in printed
    saved = json.loads((out / "eval.json").read_text())
    assert saved["runs"] == list(map(str, members)) and (out / "confusion.png").is_file()
    assert [sorted(p.name for p in m.iterdir()) for m in members] == before  # no eval.json written into a member
    assert main(["eval", str(members[0]), "--out", str(out)]) == 2
    assert "--out is for ensembles" in capsys.readouterr().err
