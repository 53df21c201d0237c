"""Noisy Student: selection by hand, pseudo-labels kept in the round, the chain of rounds, resume and refusals."""

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

from cnnlab.data.sources import ImageSet, labelled_split, load, split
from cnnlab.errors import CnnlabError
from cnnlab.runs.load import load_run
from cnnlab.runs.paradigm import NoisyStudentConfig
from cnnlab.train.evaluation import score_run
from cnnlab.train.paradigms.pseudo_labels import (
    PSEUDO_LABELS,
    pseudo_labelled,
    select,
    teacher_probabilities,
)
from cnnlab.train.run import train_run
from cnnlab.workflows.noisy_student import noisy_student
from tests.train.interrupting import interrupt_at_step
from tests.train.paradigms.rundigest import run_digest

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
COMMON = ("data.labelled_fraction=0.1", "data.val_fraction=0")


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("noisy") / "chain"
    return noisy_student("digits", "small_cnn", "small_cnn", out, 0.1, rounds=2, recipe="digits",
                         overrides=("data.val_fraction=0", "epochs=2"), teacher_overrides=("epochs=6",), console=QUIET)


def test_select_by_hand() -> None:
    probabilities = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45]])
    assert select(probabilities, 0.0, balance=False).tolist() == [0, 1, 2, 3, 4]
    assert select(probabilities, 0.65, balance=False).tolist() == [0, 2, 3]
    # Balanced: 5 kept / 2 classes -> 2 (rounded half to even) or 3 each; class 0 keeps its most
    # confident (0, 2), class 1 repeats its only image.
    per_class = round(5 / 2)
    balanced = select(probabilities, 0.0, balance=True)
    assert len(balanced) == 2 * per_class
    assert sorted(balanced.tolist()) == sorted([0, 2][:per_class] + [3] * per_class)


def test_chain_writes_rounds_taught_by_the_round_before(chain) -> None:
    names = [row["name"] for row in chain["rounds"]]
    assert names == ["teacher", "round-1", "round-2"]
    for before, after in zip(chain["rounds"], chain["rounds"][1:], strict=False):
        assert after["teacher"] == before["run"]
        recipe = (Path(after["run"]) / "recipe.yaml").read_text()
        assert before["run"] in recipe
    assert json.loads((Path(chain["rounds"][0]["run"]).parent / "rounds.json").read_text()) == chain
    # Every round is an ordinary run directory: eval reads it and scores what training scored.
    last = load_run(chain["rounds"][-1]["run"])
    assert score_run(last, last.test_split())["top1"] == pytest.approx(chain["rounds"][-1]["test_top1"])


def test_pseudo_labels_are_the_teachers_on_the_unlabelled_part(chain) -> None:
    teacher, student = (Path(chain["rounds"][i]["run"]) for i in (0, 1))
    from safetensors.torch import load_file

    kept = load_file(str(student / PSEUDO_LABELS))
    train = load("digits").train  # digits: val_fraction 0, so the training split is the whole train part
    labelled, unlabelled = labelled_split(train, 0.1, 0)
    probabilities = teacher_probabilities(teacher, train.images[unlabelled])
    assert torch.allclose(kept["probabilities"], probabilities[kept["index"]], atol=1e-6)
    summary = json.loads((student / "data.json").read_text())
    assert summary["train_images"] == len(labelled) + len(kept["index"])
    teacher_info = json.loads((teacher / "data.json").read_text())
    assert teacher_info["train_images"] == len(labelled)


def test_resume_reads_the_kept_labels_and_leaves_the_teacher(chain, tmp_path, monkeypatch) -> None:
    teacher = chain["rounds"][0]["run"]
    before = run_digest(Path(teacher))
    overrides = (*COMMON, "epochs=2", f"paradigm.noisy_student.teacher={json.dumps(teacher)}")
    undo = interrupt_at_step(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        train_run("small_cnn", "digits", out=str(tmp_path / "part"), recipe_name="digits", overrides=overrides, console=QUIET)
    undo()
    whole = tmp_path / "whole"
    train_run("small_cnn", "digits", out=str(whole), recipe_name="digits", overrides=overrides, console=QUIET)
    assert (tmp_path / "part" / PSEUDO_LABELS).read_bytes() == (whole / PSEUDO_LABELS).read_bytes()
    train_run(resume=str(tmp_path / "part"), console=QUIET)
    a = json.loads((tmp_path / "part" / "summary.json").read_text())
    b = json.loads((whole / "summary.json").read_text())
    assert a["test_top1"] == b["test_top1"] and a["epochs"] == b["epochs"] == 2
    assert run_digest(Path(teacher)) == before  # the teacher is read, never written


def test_saved_labels_win_over_the_teacher(tmp_path) -> None:
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8)
    labelled = ImageSet(images[:2], torch.tensor([0, 1]), ("a", "b"))
    unlabelled = ImageSet(images[2:], torch.tensor([0, 0, 0, 0]), ("a", "b"))
    from safetensors.torch import save_file

    saved = tmp_path / PSEUDO_LABELS
    save_file({"index": torch.tensor([3, 3, 0]), "probabilities": torch.tensor([[0.2, 0.8], [0.2, 0.8], [0.9, 0.1]])},
              str(saved))
    config = NoisyStudentConfig(teacher="/nowhere")  # never read: the kept labels are
    both, _ = pseudo_labelled(labelled, unlabelled, config, saved)
    assert torch.equal(both.images, torch.cat([images[:2], images[[5, 5, 2]]]))
    assert both.labels.tolist() == [0, 1, 1, 1, 0]
    assert torch.allclose(both.soft[:2], torch.eye(2)) and torch.allclose(both.soft[2], torch.tensor([0.2, 0.8]))
    hard, _ = pseudo_labelled(labelled, unlabelled, NoisyStudentConfig(teacher="/nowhere", soft=False), saved)
    assert hard.soft is None and hard.labels.tolist() == [0, 1, 1, 1, 0]


def test_refusals_are_one_line(chain, tmp_path) -> None:
    teacher = chain["rounds"][0]["run"]
    with pytest.raises(CnnlabError, match="set data.labelled_fraction"):
        train_run("small_cnn", "digits", out=str(tmp_path / "a"), recipe_name="digits",
                  overrides=(f"paradigm.noisy_student.teacher={json.dumps(teacher)}",), console=QUIET)
    with pytest.raises(CnnlabError, match="same seed"):
        train_run("small_cnn", "digits", out=str(tmp_path / "b"), recipe_name="digits",
                  overrides=(*COMMON, "seed=5", f"paradigm.noisy_student.teacher={json.dumps(teacher)}"), console=QUIET)
    with pytest.raises(CnnlabError, match="rounds must be >= 1"):
        noisy_student("digits", "small_cnn", "small_cnn", tmp_path / "c", 0.1, rounds=0)
    with pytest.raises(CnnlabError, match=r"labelled_fraction must lie in \(0, 1\]"):
        train_run("small_cnn", "digits", out=str(tmp_path / "d"), overrides=("data.labelled_fraction=0",), console=QUIET)


def test_split_is_independent_of_the_validation_draw() -> None:
    data = load("digits").train
    rest, _ = split(data, 0.1, 0)
    a, _ = labelled_split(rest, 0.2, 0)
    b, _ = labelled_split(rest, 0.2, 1)
    assert not torch.equal(a, b)
