"""load_run: the one reader of a run directory; runs written by the first release still load and score."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from rich.console import Console

from cnnlab.errors import CnnlabError
from cnnlab.runs.info import SCHEMA, RunInfo, TaskName
from cnnlab.runs.load import load_run, weights_digest
from cnnlab.runs.recipe import load_recipe

LEGACY = Path(__file__).parent / "fixtures" / "digits-run-v0.1.0"  # written by cnnlab 0.1.0 (schema 1, flat recipe)
QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session


def test_a_first_release_run_loads_with_its_ema_weights() -> None:
    run = load_run(LEGACY)
    assert run.info.schema == 1 and run.info.task is TaskName.CLASSIFICATION and run.info.model == "small_cnn"
    assert run.checkpoint == "best" and run.ema and not run.model.training
    assert run.recipe == load_recipe(str(LEGACY / "recipe.yaml")) and run.recipe.optim.ema_decay == 0.9
    state = json.loads((LEGACY / "checkpoints" / "best" / "state.json").read_text())
    assert state["recipe_hash"] == run.recipe.legacy_digest()  # the first release's hash of the same recipe


def test_a_first_release_run_scores_what_its_summary_says() -> None:
    from cnnlab.train.evaluation import evaluate_run

    summary = json.loads((LEGACY / "summary.json").read_text())
    evaluation = evaluate_run(LEGACY)
    # Its best epoch was its last, and 0.1.0 scored the EMA weights: the same figures to the last digit.
    assert evaluation["top1"] == summary["test_top1"] and evaluation["top5"] == summary["test_top5"]
    assert evaluation["loss"] == pytest.approx(summary["test_loss"], rel=1e-6)


def test_a_first_release_run_resumes(tmp_path) -> None:
    from cnnlab.train.run import train_run

    copy = tmp_path / "legacy"
    shutil.copytree(LEGACY, copy)
    result = train_run(resume=str(copy), overrides=(), console=QUIET)  # finished: nothing to train, scored again
    assert result["epochs"] == 2 and result["weights"].items() >= {"checkpoint": "best", "ema": True}.items()
    assert RunInfo.read(copy).schema == SCHEMA  # data.json is written again, as schema 2


def test_weights_choice_and_its_errors(tmp_path) -> None:
    assert load_run(LEGACY, "last").checkpoint == "last"
    copy = tmp_path / "nobest"
    shutil.copytree(LEGACY, copy)
    shutil.rmtree(copy / "checkpoints" / "best")
    assert load_run(copy).checkpoint == "last"  # auto falls back to last
    with pytest.raises(CnnlabError, match="has no best checkpoint"):
        load_run(copy, "best")


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "holds a list, not a mapping"),
    ('{"schema": 9}', "has schema 9; this cnnlab reads 1 to 2"),
    ('{"spec": "digits"}', "is incomplete"),
])
def test_damaged_data_json_is_one_line(tmp_path, content: str, message: str) -> None:
    copy = tmp_path / "run"
    shutil.copytree(LEGACY, copy)
    (copy / "data.json").write_text(content)
    with pytest.raises(CnnlabError, match=message) as error:
        load_run(copy)
    assert "\n" not in str(error.value) and "data.json" in str(error.value)


def test_damaged_checkpoint_is_one_line(tmp_path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(LEGACY, copy)
    (copy / "checkpoints" / "best" / "model.safetensors").write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(CnnlabError, match="cannot be loaded") as error:
        load_run(copy)
    assert "\n" not in str(error.value)
    data = json.loads((copy / "data.json").read_text())
    (copy / "data.json").write_text(json.dumps({**data, "model": "lenet5"}))  # weights of another model
    with pytest.raises(CnnlabError, match="cannot be loaded"):
        load_run(copy, "last")


def test_run_info_round_trip(tmp_path) -> None:
    info = RunInfo.read(LEGACY)
    info.write(tmp_path)
    again = RunInfo.read(tmp_path)
    assert again.schema == SCHEMA and again.classes == info.classes and again.mean == info.mean
    assert json.loads((tmp_path / "data.json").read_text())["task"] == "classification"
    assert torch.equal(again.normalisation(torch.full((1, 1, 1, 1), 255, dtype=torch.uint8)),
                       info.normalisation(torch.full((1, 1, 1, 1), 255, dtype=torch.uint8)))


def test_weights_digest_is_the_state_and_nothing_else() -> None:
    import copy
    import hashlib

    from cnnlab.models import create_model

    torch.manual_seed(0)
    model = create_model("small_cnn", num_classes=10, in_chans=1)
    twin = copy.deepcopy(model)
    assert weights_digest(model) == weights_digest(twin)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    twin.train()(torch.randn(4, 1, 28, 28))  # moves the BatchNorm statistics and their counters
    assert weights_digest(twin) != weights_digest(model)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # read, never changed
    one = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        one.weight.copy_(torch.tensor([[1.0, 2.0]]))
    by_hand = hashlib.sha256(b"weight:(1, 2):torch.float32;" + torch.tensor([1.0, 2.0]).numpy().tobytes()).hexdigest()[:16]
    assert weights_digest(one) == by_hand
