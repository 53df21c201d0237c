"""A run used as a source (teacher, fine-tuning source, ensemble member, report, eval) has finished an epoch.

A run stopped in its first epoch (Ctrl-C, kill -9) keeps checkpoints/last at epoch 0: the
starting point that resume continues from, holding untrained weights. load_run refuses it, so
everything that reads a run refuses it by name, in one line that names the fix.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from rich.console import Console

from cnnlab.errors import CnnlabError
from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.runs.load import load_run, require_trained
from cnnlab.train.run import train_run
from tests.train.interrupting import interrupt_at_step

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
OVERRIDES = ("epochs=2",)
STEPS_PER_EPOCH = 21  # digits: 1,294 training images, batch 64


def _stopped_at_step(out: Path, step: int) -> Path:
    """Return a run Ctrl-C stopped as it began optimiser step `step`, as train_run leaves it on disk."""
    with pytest.MonkeyPatch.context() as patch:
        interrupt_at_step(patch, step)
        with pytest.raises(KeyboardInterrupt):
            train_run(out=str(out), overrides=OVERRIDES, console=QUIET)
    return out


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Path:
    run = _stopped_at_step(tmp_path_factory.mktemp("sources") / "killed", 1)
    # What a kill -9 in epoch 1 leaves too: recipe.yaml, data.json and the starting point, no metrics, no summary.
    assert load_checkpoint(run / "checkpoints" / "last")[1]["epoch"] == 0
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"last"}
    assert not (run / "metrics.csv").exists() and not (run / "summary.json").exists()
    return run


def _refused(error: pytest.ExceptionInfo, run: Path) -> None:
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{run} has not finished an epoch")
    assert message.endswith(f"finish it with cnnlab train --resume {run}")


def test_load_run_refuses_a_run_killed_in_its_first_epoch(killed) -> None:
    for weights in (None, "last", "auto"):
        with pytest.raises(CnnlabError) as error:
            load_run(killed, weights)
        _refused(error, killed)
    with pytest.raises(CnnlabError) as error:
        require_trained(killed)
    _refused(error, killed)


def test_a_run_killed_before_its_first_checkpoint_is_refused_too(killed, tmp_path) -> None:
    run = tmp_path / "unborn"
    shutil.copytree(killed, run)
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(CnnlabError, match="no checkpoint yet") as error:
        load_run(run)
    _refused(error, run)


def test_distillation_refuses_it_as_teacher(killed, tmp_path) -> None:
    student = tmp_path / "student"
    with pytest.raises(CnnlabError) as error:
        train_run(out=str(student), overrides=("epochs=1", f"paradigm.distill.teachers=[{killed}]"), console=QUIET)
    _refused(error, killed)
    assert not student.exists()  # refused before the student's run directory was made


def test_finetune_refuses_it_as_source(killed, tmp_path) -> None:
    from cnnlab.models.registry import create_model
    from cnnlab.runs.paradigm import FinetuneConfig
    from cnnlab.train.paradigms.finetune import transfer

    with pytest.raises(CnnlabError) as error:
        train_run(out=str(tmp_path / "tuned"), overrides=("epochs=1", f"paradigm.finetune.source={json.dumps(str(killed))}"),
                  console=QUIET)
    _refused(error, killed)
    with pytest.raises(CnnlabError) as error:
        transfer(create_model("small_cnn", num_classes=10, in_chans=1), "small_cnn", FinetuneConfig(source=str(killed)))
    _refused(error, killed)


def test_ensemble_refuses_it_as_member(killed) -> None:
    from cnnlab.workflows.ensemble import evaluate_ensemble

    with pytest.raises(CnnlabError) as error:
        evaluate_ensemble([killed, killed])
    _refused(error, killed)


def test_report_refuses_it(killed) -> None:
    from cnnlab.report.run_report import report_context

    with pytest.raises(CnnlabError) as error:
        report_context(killed)
    _refused(error, killed)


@pytest.mark.parametrize("reader", ["eval", "noisy_student_teacher", "tta_table"])
def test_every_other_reader_refuses_it(killed, reader: str) -> None:
    from cnnlab.train.evaluation import evaluate_run
    from cnnlab.train.paradigms.pseudo_labels import teacher_probabilities
    from cnnlab.workflows.tta_table import tta_table

    read = {"eval": lambda: evaluate_run(killed),
            "noisy_student_teacher": lambda: teacher_probabilities(killed, torch.zeros(2, 1, 8, 8, dtype=torch.uint8)),
            "tta_table": lambda: tta_table([killed])}[reader]
    with pytest.raises(CnnlabError) as error:
        read()
    _refused(error, killed)


def test_a_run_stopped_after_its_first_epoch_is_a_source_but_not_a_report(tmp_path) -> None:
    from cnnlab.report.run_report import report_context

    run = _stopped_at_step(tmp_path / "one", STEPS_PER_EPOCH + 1)  # Ctrl-C as epoch 2 begins
    assert load_checkpoint(run / "checkpoints" / "last")[1]["epoch"] == 1
    assert load_run(run).checkpoint == "best"  # trained weights: a teacher, a source, a member
    with pytest.raises(CnnlabError, match=r"has not finished training \(no summary.json\): finish it with "
                                          r"cnnlab train --resume") as error:
        report_context(run)  # the page headlines summary.json's figures
    assert "\n" not in str(error.value)


def test_weights_other_than_the_summary_describes_are_refused(tmp_path) -> None:
    """summary.json records the digest of the weights that scored the run; changed weights are refused by name."""
    from safetensors.torch import load_file, save_file

    from cnnlab.cli import main
    from cnnlab.runs.load import weights_digest

    run = tmp_path / "done"
    assert main(["train", "--out", str(run), "--epochs", "1", "val_fraction=0"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["weights"]["digest"] == weights_digest(load_run(run).model)
    changed = tmp_path / "changed"
    shutil.copytree(run, changed)
    weights = changed / "checkpoints" / summary["weights"]["checkpoint"] / "model.safetensors"
    tensors = load_file(str(weights))
    first = next(iter(tensors))
    tensors[first] = tensors[first] + 1.0
    save_file(tensors, str(weights))
    with pytest.raises(CnnlabError, match="holds other weights than its summary.json describes"):
        load_run(changed)
    assert load_run(changed, verify=False).checkpoint == summary["weights"]["checkpoint"]
