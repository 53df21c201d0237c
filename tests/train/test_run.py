"""The embedded default job: accuracy on held-out digits, the run directory, resume from it."""

import csv
import json
import os

import pytest
import torch
from rich.console import Console

from cnnlab.errors import CnnlabError
from cnnlab.models.small import small_cnn
from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.runs.recipe import load_recipe
from cnnlab.runs.rundir import new_run_dir
from cnnlab.train.run import train_run

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    result = train_run(out=str(out), overrides=("epochs=12",), console=QUIET)
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


def test_existing_run_is_never_overwritten(demo_run) -> None:
    out, _ = demo_run
    with pytest.raises(CnnlabError, match="already exists"):
        new_run_dir(out)
    fresh = new_run_dir(out, exist_ok_suffix=True)
    assert fresh.name == "digits-2" and (out / "summary.json").exists()


def test_resume_needs_a_run_directory(tmp_path) -> None:
    with pytest.raises(CnnlabError, match="not a run directory"):
        train_run(resume=str(tmp_path), console=QUIET)


def test_eval_and_predict_read_the_run(demo_run, tmp_path) -> None:
    from PIL import Image

    from cnnlab.data.sources import load
    from cnnlab.runs.load import load_run
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
    top = predict(load_run(out), [str(path)], top_k=3)[0]["top"]
    assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"]
    assert top[0]["class"] == test.classes[test.labels[index]]
    assert sum(t["probability"] for t in top) <= 1.0 + 1e-6
    with pytest.raises(CnnlabError, match="cannot read image"):
        predict(load_run(out), [str(tmp_path / "missing.png")])


def test_zoo_model_trains_and_eval_predict_rebuild_it(tmp_path) -> None:
    from PIL import Image

    from cnnlab.data.sources import load
    from cnnlab.runs.load import load_run
    from cnnlab.train.evaluation import evaluate_run, predict

    out = tmp_path / "lenet"
    # 8x8 digits resized to 28 and padded to LeNet-5's 32x32 by the MNIST recipe.
    result = train_run("lenet5", "digits", out=str(out), recipe_name="lenet-mnist",
                       overrides=("epochs=15", "input_size=28"), console=QUIET)
    data = json.loads((out / "data.json").read_text())
    assert data["model"] == "lenet5" and data["input_size"] == [1, 32, 32] and data["image_size"] == [1, 8, 8]
    assert result["model"] == "lenet5" and result["test_top1"] > 0.8  # 89-99 % over seeds 0-2; chance is 10 %
    evaluation = evaluate_run(out)
    assert evaluation["images"] == 359
    test = load("digits").test
    path = tmp_path / "digit.png"
    Image.fromarray(test.images[0, 0].numpy(), mode="L").save(path)
    assert len(predict(load_run(out), [str(path)], top_k=2)[0]["top"]) == 2
    with pytest.raises(CnnlabError, match="trains lenet5, not resnet18"):
        train_run("resnet18", resume=str(out), console=QUIET)


def test_too_small_images_are_named_with_the_fix(tmp_path) -> None:
    with pytest.raises(CnnlabError, match=r"resnet18 needs images of at least 32x32.*input_size=32"):
        train_run("resnet18", "digits", out=str(tmp_path / "r"), console=QUIET)
    assert not (tmp_path / "r").exists()  # nothing written for a run that cannot start


def test_eval_scores_the_runs_own_held_out_part(tmp_path) -> None:
    from cnnlab.train.evaluation import evaluate_run

    # digits has no official test split: the run holds one out by its seed, and eval must too.
    result = train_run(out=str(tmp_path / "s3"), overrides=("epochs=2", "seed=3"), console=QUIET)
    assert evaluate_run(tmp_path / "s3", checkpoint="last")["loss"] == pytest.approx(result["test_loss"], rel=1e-5)


def test_ema_weights_are_what_the_run_serves(tmp_path) -> None:
    from cnnlab.train.evaluation import evaluate_run

    out = tmp_path / "ema"
    result = train_run(out=str(out), overrides=("epochs=2", "ema_decay=0.9"), console=QUIET)
    # The test score of the run and of `cnnlab eval` on its best checkpoint come from the EMA weights.
    assert evaluate_run(out, checkpoint="last")["loss"] == pytest.approx(result["test_loss"], rel=1e-5)


def test_tensorboard_events_mirror_metrics_csv(tmp_path) -> None:
    pytest.importorskip("tensorboard")  # an optional extra; installed with dev
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "tb"
    train_run(out=str(out), overrides=("epochs=2",), console=QUIET)
    events = EventAccumulator(str(out))
    events.Reload()
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    val_acc = [e.value for e in events.Scalars("val_acc")]
    assert [e.step for e in events.Scalars("train_loss")] == [1, 2]
    assert val_acc == pytest.approx([float(r["val_acc"]) for r in rows], rel=1e-6)


def test_progress_bar_shows_epoch_step_loss_accuracy_speed(tmp_path) -> None:
    console = Console(record=True, width=200, file=open(os.devnull, "w"))  # noqa: SIM115
    train_run(out=str(tmp_path / "bar"), overrides=("epochs=2", "batch_size=256"), console=console)
    text = console.export_text()
    # 1,438 training digits in batches of 256: 6 steps per epoch.
    assert "epoch 2/2 step 6/6" in text and "loss " in text and "val acc " in text and "img/s" in text


def test_eval_equals_summary_with_tta_and_ema(tmp_path) -> None:
    from cnnlab.train.evaluation import evaluate_run

    out = tmp_path / "tta"
    result = train_run(out=str(out), overrides=("epochs=4", "ema_decay=0.9", "tta=flip+shift"), console=QUIET)
    evaluation = evaluate_run(out)
    # One scoring path: the same weights (best, EMA), the same four views, to the last digit.
    assert result["weights"] == evaluation["weights"] and result["weights"].items() >= {"checkpoint": "best", "ema": True}.items()
    assert result["tta"] == evaluation["tta"] == "flip+shift"
    assert evaluation["top1"] == result["test_top1"] and evaluation["loss"] == result["test_loss"]
    assert evaluation["top5"] == result["test_top5"]
    last = evaluate_run(out, checkpoint="last")
    assert last["weights"].items() >= {"checkpoint": "last", "ema": True}.items()


def test_without_validation_the_last_weights_score(tmp_path) -> None:
    out = tmp_path / "noval"
    result = train_run(out=str(out), overrides=("epochs=2", "val_fraction=0"), console=QUIET)
    assert result["weights"].items() >= {"checkpoint": "last", "ema": False}.items() and not (out / "checkpoints" / "best").exists()
    assert json.loads((out / "data.json").read_text())["val_images"] == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "lr", "seconds", "images_per_second"]
