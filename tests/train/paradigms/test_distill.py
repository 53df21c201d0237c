"""Distillation: Hinton et al.'s loss by hand, the ensemble teacher's normalisation, teachers left untouched."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from rich.console import Console

from cnnlab.data.normalise import Normalisation
from cnnlab.errors import CnnlabError
from cnnlab.runs.load import load_run, weights_digest
from cnnlab.runs.paradigm import DistillConfig
from cnnlab.runs.recipe import LossConfig, load_recipe
from cnnlab.train.paradigms.distill import Distillation, check_teacher
from cnnlab.train.run import train_run
from cnnlab.train.tasks import Classification
from tests.train.interrupting import interrupt_at_step
from tests.train.paradigms.rundigest import run_digest

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
CLASSES = tuple("0123456789")


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("teachers")
    runs = []
    for seed in (0, 1):
        train_run(out=str(root / f"t{seed}"), overrides=("epochs=3", f"seed={seed}"), console=QUIET)
        runs.append(root / f"t{seed}")
    return runs


def test_loss_is_hintons_by_hand() -> None:
    torch.manual_seed(0)
    config = DistillConfig(teachers=("unused",), temperature=3.0, alpha=0.7)
    task = Distillation(10, LossConfig(label_smoothing=0.1), config, CLASSES, (1, 8, 8))
    logits, teacher_logits = torch.randn(6, 10), torch.randn(6, 10)
    labels = torch.randint(0, 10, (6,))
    teacher = (teacher_logits / 3.0).softmax(1)
    target = torch.cat([teacher, F.one_hot(labels, 10).float()], dim=1)
    loss, returned = task.loss(logits, target)
    student = (logits / 3.0).log_softmax(1)
    kl = (teacher * (teacher.log() - student)).sum(1).mean()  # KL(teacher || student), per image
    hard = F.cross_entropy(logits, labels, label_smoothing=0.1)
    assert torch.allclose(loss, 0.7 * 9.0 * kl + 0.3 * hard, atol=1e-6)
    assert returned is logits
    assert task.hits(logits, target) == Classification(10).hits(logits, labels)


def test_alpha_zero_is_plain_training() -> None:
    task = Distillation(10, None, DistillConfig(teachers=("x",), alpha=0.0), CLASSES, (1, 8, 8))
    logits, labels = torch.randn(4, 10), torch.randint(0, 10, (4,))
    target = torch.cat([torch.full((4, 10), 0.1), F.one_hot(labels, 10).float()], dim=1)
    assert torch.allclose(task.loss(logits, target)[0], Classification(10).loss(logits, labels)[0])


def test_ensemble_teacher_averages_each_teachers_softmax_in_its_own_normalisation(teachers) -> None:
    config = DistillConfig(teachers=tuple(map(str, teachers)), temperature=2.0)
    task = Distillation(10, None, config, CLASSES, (1, 8, 8))
    student_norm = Normalisation(mean=(0.3,), std=(0.2,))  # not the teachers': the map between them is checked
    task.attach(student_norm, torch.device("cpu"))
    pixels = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, 10, (5,))
    target = task.batch_targets(student_norm(pixels), labels)
    expected = torch.stack([(load_run(t).model(load_run(t).normalisation(pixels)) / 2.0).softmax(1) for t in teachers]).mean(0)
    assert torch.allclose(target[:, :10], expected, atol=1e-5)
    assert torch.equal(target[:, 10:], F.one_hot(labels, 10).float())
    soft = torch.full((5, 10), 0.1)  # MixUp's soft targets pass through as they are
    assert torch.equal(task.batch_targets(student_norm(pixels), soft)[:, 10:], soft)


def test_distilled_run_trains_scores_and_leaves_its_teachers_as_they_were(teachers, tmp_path) -> None:
    before = [run_digest(t) for t in teachers]
    out = tmp_path / "student"
    result = train_run(out=str(out), overrides=("epochs=2", f"paradigm.distill.teachers=[{teachers[0]}, {teachers[1]}]"),
                       console=QUIET)
    assert result["test_top1"] > 0.5  # digits after 2 epochs with two teachers
    assert [run_digest(t) for t in teachers] == before
    assert load_recipe(str(out / "recipe.yaml")).paradigm.distill.teachers == tuple(map(str, teachers))
    assert load_run(out).model(torch.zeros(1, 1, 8, 8)).shape == (1, 10)  # cnnlab eval reads it as any run


def test_student_records_its_teachers_and_resume_refuses_one_that_changed(teachers, tmp_path, monkeypatch) -> None:
    import json
    import shutil

    teacher = tmp_path / "teacher"
    shutil.copytree(teachers[0], teacher)
    overrides = ("epochs=3", f"paradigm.distill.teachers=[{teacher}]")
    undo = interrupt_at_step(monkeypatch, 30)  # Ctrl-C in epoch 2 (21 steps an epoch)
    with pytest.raises(KeyboardInterrupt):
        train_run(out=str(tmp_path / "s"), overrides=overrides, console=QUIET)
    undo()
    recorded = json.loads((tmp_path / "s" / "teachers.json").read_text())
    used = load_run(teacher)
    assert recorded == [{"run": str(teacher), "checkpoint": used.checkpoint, "ema": used.ema,
                         "weights_sha256": weights_digest(used.model)}]
    assert weights_digest(used.model) != weights_digest(load_run(teachers[1]).model)
    # The teacher is retrained in between: its weights differ, and the student must not mix two teachers.
    shutil.rmtree(teacher)
    shutil.copytree(teachers[1], teacher)
    before = run_digest(tmp_path / "s")
    with pytest.raises(CnnlabError, match="is not the teacher this student started with") as error:
        train_run(resume=str(tmp_path / "s"), console=QUIET)
    assert "\n" not in str(error.value) and run_digest(tmp_path / "s") == before
    shutil.rmtree(teacher)
    shutil.copytree(teachers[0], teacher)  # restored: the resume goes on and the summary names the teacher
    result = train_run(resume=str(tmp_path / "s"), console=QUIET)
    assert result["epochs"] == 3 and result["teachers"] == recorded


def test_distillation_digest_differs_and_plain_recipes_keep_theirs() -> None:
    plain = load_recipe("digits")
    distilled = load_recipe("digits", ["paradigm.distill.teachers=[a]"])
    assert plain.digest() != distilled.digest()
    assert plain.digest() == load_recipe("digits", ["paradigm.distill.alpha=0.9"]).digest()  # the default
    assert distilled.legacy_digest() is None


def test_bad_teachers_get_one_line(teachers, tmp_path) -> None:
    info = load_run(teachers[0]).info
    with pytest.raises(CnnlabError, match="knows the classes"):
        check_teacher(info, "t", tuple("abcdefghij"), (1, 8, 8))
    with pytest.raises(CnnlabError, match="reads 1x8x8 inputs, the student 1x32x32"):
        check_teacher(info, "t", CLASSES, (1, 32, 32))
    with pytest.raises(CnnlabError) as error:
        train_run(out=str(tmp_path / "s"), overrides=("epochs=1", f"paradigm.distill.teachers=[{tmp_path / 'none'}]"),
                  console=QUIET)
    assert "\n" not in str(error.value)
    with pytest.raises(CnnlabError, match="temperature must be > 0"):
        load_recipe("digits", ["paradigm.distill.temperature=0"])
    with pytest.raises(CnnlabError, match="segmentation data"):
        train_run(data="digits-seg", out=str(tmp_path / "seg"), overrides=("epochs=1", f"paradigm.distill.teachers=[{teachers[0]}]"),
                  console=QUIET)
