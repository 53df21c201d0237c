"""The embedded default job: accuracy on held-out digits, and the run directory it leaves."""

import csv
import json

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from cnnlab.errors import CnnlabError
from cnnlab.models.small import small_cnn
from cnnlab.train.demo import run_demo
from cnnlab.train.rundir import load_weights, new_run_dir, save_checkpoint


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    result = run_demo(out=str(out), epochs=12, console=Console(file=open("/dev/null", "w")))
    return out, result


def test_demo_reaches_95_percent(demo_run) -> None:
    _, result = demo_run
    assert result["test_top1"] >= 0.95
    assert result["test_images"] == 359


def test_demo_run_directory(demo_run) -> None:
    out, result = demo_run
    assert json.loads((out / "summary.json").read_text()) == result
    data = json.loads((out / "data.json").read_text())
    assert data["classes"] == list("0123456789") and data["input_size"] == [1, 8, 8]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 12 and float(rows[-1]["test_acc"]) == result["test_top1"]
    weights = load_file(str(out / "checkpoints" / "last" / "model.safetensors"))
    model = small_cnn()
    model.load_state_dict(weights)  # the checkpoint loads without pickle
    assert json.loads((out / "checkpoints" / "last" / "state.json").read_text())["epoch"] == 12


def test_existing_run_is_never_overwritten(demo_run, tmp_path) -> None:
    out, _ = demo_run
    with pytest.raises(CnnlabError, match="already exists"):
        new_run_dir(out)
    fresh = new_run_dir(out, exist_ok_suffix=True)
    assert fresh.name == "digits-2" and (out / "summary.json").exists()


def test_checkpoint_replaced_whole(tmp_path) -> None:
    model = small_cnn()
    target = tmp_path / "checkpoints" / "last"
    save_checkpoint(target, model, {"epoch": 1})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    save_checkpoint(target, model, {"epoch": 2})
    restored = small_cnn()
    load_weights(target, restored)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), restored.state_dict().values(), strict=True))
    assert json.loads((target / "state.json").read_text())["epoch"] == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["last"]  # no staging left behind
    with pytest.raises(CnnlabError, match="no model.safetensors"):
        load_weights(tmp_path, restored)
