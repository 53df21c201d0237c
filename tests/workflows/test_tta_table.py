"""Deck 004's table: each row against the one scoring path and a hand-made ensemble."""

import pytest
import torch
from rich.console import Console

from cnnlab.cli import main
from cnnlab.data.tta import TTA, Views, ten_crops
from cnnlab.errors import CnnlabError
from cnnlab.runs.load import load_run
from cnnlab.train.evaluation import evaluate
from cnnlab.train.run import train_run
from cnnlab.train.tasks import Classification
from cnnlab.workflows.tta_table import default_scales, tta_table

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session


@pytest.fixture(scope="module")
def crop_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("crops")
    for lr in (0.01, 0.02):
        train_run(out=str(root / f"lr{lr}"), overrides=("epochs=2", f"optim.lr={lr}", "evaluation.crop=6",
                                                         "augment=[{op: random_crop, size: 6}]"), console=QUIET)
    return [root / "lr0.01", root / "lr0.02"]


def test_rows_match_the_scoring_path_and_a_hand_ensemble(crop_runs) -> None:
    table = tta_table(crop_runs)
    rows = {(r["models"], r["views"]): r for r in table["rows"]}
    assert table["scales"] == list(default_scales(6, 8)) == [6, 8, 10]
    runs = [load_run(p) for p in crop_runs]
    test = runs[0].test_split()
    task = Classification(10)
    for views, name in ((Views(TTA.NONE, 6), "1 crop"), (Views(TTA.TEN_CROP, 6), "10 crops"),
                        (Views(TTA.MULTI_SCALE, None, (6, 8, 10)), "multi-scale")):
        singles = [evaluate(r.model, test, r.normalisation, task, views).result()["acc"] for r in runs]
        assert rows[(1, name)]["top1"] == pytest.approx(sum(singles) / 2, abs=1e-6)
        assert rows[(1, name)]["max"] == pytest.approx(max(singles), abs=1e-6)
    with torch.no_grad():
        mean = torch.stack([torch.stack([r.model(v) for v in ten_crops(r.normalisation(test.images), 6)]).mean(0).softmax(1)
                            for r in runs]).mean(0)
    assert rows[(2, "10 crops")]["top1"] == pytest.approx((mean.argmax(1) == test.labels).float().mean().item(), abs=1e-6)


def test_one_run_gives_the_single_model_rows_alone(crop_runs, capsys) -> None:
    two = {(r["models"], r["views"]): r["top1"] for r in tta_table(crop_runs)["rows"]}
    one = tta_table(crop_runs[:1])["rows"]
    assert [r["models"] for r in one] == [1, 1, 1]
    run = load_run(crop_runs[0])
    acc = evaluate(run.model, run.test_split(), run.normalisation, Classification(10), Views(TTA.TEN_CROP, 6)).result()["acc"]
    assert {r["views"]: r["top1"] for r in one}["10 crops"] == pytest.approx(acc, abs=1e-6)
    assert {r["views"]: r["max"] for r in one}["10 crops"] == pytest.approx(acc, abs=1e-6) and two[(2, "10 crops")] > 0
    assert main(["eval", str(crop_runs[0]), "--tta-table"]) == 0
    printed = capsys.readouterr().out
    assert "10 crops" in printed and "     2  " not in printed
    with pytest.raises(CnnlabError, match="give one run directory"):
        tta_table([])


def test_table_on_the_command_line_and_its_refusals(crop_runs, tmp_path, capsys) -> None:
    assert main(["eval", *map(str, crop_runs), "--tta-table", "--scales", "6,8", "--out", str(tmp_path / "t")]) == 0
    printed = capsys.readouterr().out
    assert "10 crops" in printed and "multi-scale at 6, 8 px" in printed and (tmp_path / "t" / "tta_table.json").is_file()
    plain = tmp_path / "plain"
    train_run(out=str(plain), overrides=("epochs=1",), console=QUIET)
    other = tmp_path / "plain2"
    train_run(out=str(other), overrides=("epochs=1", "optim.lr=0.02"), console=QUIET)
    with pytest.raises(CnnlabError, match="give --crop"):
        tta_table([plain, other])


def test_views_a_fixed_head_cannot_take_are_refused_before_training(tmp_path) -> None:
    from cnnlab.data.tta import Views
    from cnnlab.models import create_model
    from cnnlab.train.evaluation import check_views

    lenet = create_model("lenet5").train()
    with pytest.raises(CnnlabError, match="cannot score the 28x28 views of tta multiscale") as error:
        check_views(lenet, (1, 32, 32), Views(TTA.MULTI_SCALE, None, (28, 32)))
    assert "\n" not in str(error.value) and lenet.training  # the mode it had
    with pytest.raises(CnnlabError, match="cannot score the 6x6 views"):
        train_run(model="lenet5", out=str(tmp_path / "l"), overrides=("epochs=1", "data.input_size=32", "evaluation.crop=6",
                                                                      "augment=[{op: random_crop, size: 6}]"), console=QUIET)
    assert not (tmp_path / "l").exists()
