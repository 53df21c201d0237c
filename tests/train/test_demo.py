"""The embedded default job: accuracy on held-out digits, the run directory, resume from it."""

import csv
import json

import pytest
import torch
from rich.console import Console

from cnnlab.errors import CnnlabError
from cnnlab.models.small import small_cnn
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.demo import run_demo
from cnnlab.train.recipe import load_recipe
from cnnlab.train.rundir import new_run_dir

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    result = run_demo(out=str(out), overrides=("epochs=12",), console=QUIET)
    return out, result


def test_demo_reaches_95_percent(demo_run) -> None:
    _, result = demo_run
    assert result["test_top1"] >= 0.95 and result["test_top5"] >= result["test_top1"]
    assert result["test_images"] == 359 and result["epochs"] == 12


def test_demo_run_directory(demo_run) -> None:
    out, result = demo_run
    assert json.loads((out / "summary.json").read_text()) == result
    data = json.loads((out / "data.json").read_text())
    assert data["classes"] == list("0123456789") and data["input_size"] == [1, 8, 8]
    assert data["train_images"] + data["val_images"] + data["test_images"] == 1797
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 12 and {"train_loss", "val_acc", "val_top5", "lr", "images_per_second"} <= set(rows[0])
    assert load_recipe(str(out / "recipe.yaml")).epochs == 12
    for name in ("last", "best"):
        model = small_cnn()
        state, info = load_checkpoint(out / "checkpoints" / name, model)  # safetensors, no pickle
        assert info["recipe_hash"] == load_recipe(str(out / "recipe.yaml")).digest()
    assert info["epoch"] <= 12


def test_ctrl_c_then_resume_ends_like_an_unbroken_run(tmp_path, monkeypatch) -> None:
    overrides = ("epochs=3", "deterministic=true")
    whole = run_demo(out=str(tmp_path / "whole"), overrides=overrides, console=QUIET)

    from cnnlab.train.engine import Trainer

    original = Trainer._train_epoch

    def interrupted(self):  # Ctrl-C arrives as epoch 2 begins
        if self.state.epoch == 1:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_demo(out=str(tmp_path / "part"), overrides=overrides, console=QUIET)
    assert load_checkpoint(tmp_path / "part" / "checkpoints" / "last")[1]["epoch"] == 1
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    resumed = run_demo(resume=str(tmp_path / "part"), console=QUIET)
    assert resumed["epochs"] == 3 and resumed["test_loss"] == whole["test_loss"]
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last", small_cnn())[0]
    b = load_checkpoint(tmp_path / "part" / "checkpoints" / "last", small_cnn())[0]
    assert a["counters"] == b["counters"]
    rows = list(csv.DictReader((tmp_path / "part" / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]


def test_existing_run_is_never_overwritten(demo_run) -> None:
    out, _ = demo_run
    with pytest.raises(CnnlabError, match="already exists"):
        new_run_dir(out)
    fresh = new_run_dir(out, exist_ok_suffix=True)
    assert fresh.name == "digits-2" and (out / "summary.json").exists()


def test_resume_needs_a_run_directory(tmp_path) -> None:
    with pytest.raises(CnnlabError, match="not a run directory"):
        run_demo(resume=str(tmp_path), console=QUIET)


def test_eval_and_predict_read_the_run(demo_run, tmp_path) -> None:
    from PIL import Image

    from cnnlab.data.sources import load
    from cnnlab.train.evaluation import evaluate_run, predict

    out, result = demo_run
    evaluation = evaluate_run(out)
    assert evaluation["images"] == 359 and evaluation["top1"] >= 0.95
    confusion = torch.tensor(evaluation["confusion_matrix"])
    assert confusion.sum() == 359 and confusion.trace().item() / 359 == pytest.approx(evaluation["top1"])
    # A test digit written out as a PNG comes back as its own class.
    test = load("digits").test
    index = 0
    path = tmp_path / "digit.png"
    Image.fromarray(test.images[index, 0].numpy(), mode="L").save(path)
    top = predict(out, [str(path)], top_k=3)[0]["top"]
    assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"]
    assert top[0]["class"] == test.classes[test.labels[index]]
    assert sum(t["probability"] for t in top) <= 1.0 + 1e-6
    with pytest.raises(CnnlabError, match="cannot read image"):
        predict(out, [str(tmp_path / "missing.png")])
