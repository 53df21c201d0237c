"""The paradigms on a CUDA device: the CPU's figures, run directories any device reads, teachers and sources untouched."""

import json
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from cnnlab.data.sources import labelled_split, load
from cnnlab.models.fully_conv import fully_convolutional
from cnnlab.models.registry import create_model
from cnnlab.runs.load import load_run
from cnnlab.train.evaluation import score_run
from cnnlab.train.paradigms.pseudo_labels import PSEUDO_LABELS, teacher_probabilities
from cnnlab.train.paradigms.snapshot import snapshots_of
from cnnlab.train.run import train_run
from cnnlab.workflows.ensemble import evaluate_ensemble
from cnnlab.workflows.noisy_student import noisy_student
from tests.train.paradigms.rundigest import run_digest

pytestmark = pytest.mark.gpu
QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
# One image of the 359 in digits' test split: cuDNN's kernels may flip an image that sits on a tie.
ONE_IMAGE = 1 / 359 + 1e-9


def _scores_as_trained(run: Path, top1: float) -> bool:
    """Return whether the run, loaded on the CPU, scores what training on the GPU reported, to one image."""
    loaded = load_run(run)
    return abs(score_run(loaded, loaded.test_split())["top1"] - top1) <= ONE_IMAGE


@pytest.fixture(scope="module")
def cuda_runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("cuda")
    runs = []
    for i, lr in enumerate((0.02, 0.05)):  # one seed: digits draws its test split by the seed
        train_run(out=str(root / f"r{i}"), overrides=("epochs=3", f"optim.lr={lr}"), console=QUIET, device="cuda")
        runs.append(root / f"r{i}")
    return runs


def test_a_run_trained_on_cuda_scores_the_same_on_the_cpu(cuda_runs) -> None:
    summary = json.loads((cuda_runs[0] / "summary.json").read_text())
    assert summary["device"].startswith("cuda")
    on_cpu = load_run(cuda_runs[0])
    on_gpu = load_run(cuda_runs[0], device="cuda")
    cpu, gpu = score_run(on_cpu, on_cpu.test_split()), score_run(on_gpu, on_gpu.test_split())
    assert cpu["images"] == gpu["images"] == 359
    assert abs(cpu["top1"] - gpu["top1"]) <= ONE_IMAGE
    assert cpu["loss"] == pytest.approx(gpu["loss"], rel=1e-3)


def test_teacher_probabilities_on_cuda_are_the_cpus(cuda_runs) -> None:
    images = load("digits").train.images[:500]
    cpu = teacher_probabilities(cuda_runs[0], images)
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):  # the CPU's fp32: TF32 moves them by ~1e-3
        gpu = teacher_probabilities(cuda_runs[0], images, device="cuda")
    assert gpu.device.type == "cpu" and gpu.shape == cpu.shape == (500, 10)
    assert torch.allclose(cpu, gpu, atol=1e-5)


def test_distillation_on_cuda_from_two_teachers(cuda_runs, tmp_path) -> None:
    before = [run_digest(r) for r in cuda_runs]
    teachers = json.dumps([str(r) for r in cuda_runs])
    result = train_run(out=str(tmp_path / "student"), overrides=("epochs=2", f"paradigm.distill.teachers={teachers}"),
                       console=QUIET, device="cuda")
    assert [run_digest(r) for r in cuda_runs] == before
    assert _scores_as_trained(tmp_path / "student", result["test_top1"])


def test_ensemble_on_cuda_is_the_ensemble_on_the_cpu(cuda_runs) -> None:
    cpu, gpu = evaluate_ensemble(cuda_runs), evaluate_ensemble(cuda_runs, device="cuda")
    assert cpu["images"] == gpu["images"] == 359
    assert abs(cpu["top1"] - gpu["top1"]) <= ONE_IMAGE
    assert cpu["loss"] == pytest.approx(gpu["loss"], rel=1e-3)


def test_noisy_student_on_cuda_keeps_the_teachers_labels(tmp_path) -> None:
    # The resident GPU placement carries the soft targets: the round trains on them and keeps them.
    chain = noisy_student("digits", "small_cnn", "small_cnn", tmp_path / "chain", 0.1, rounds=1, recipe="digits",
                          overrides=("data.val_fraction=0", "epochs=2"), teacher_overrides=("epochs=4",),
                          device="cuda", console=QUIET)
    teacher, student = (Path(chain["rounds"][i]["run"]) for i in (0, 1))
    kept = load_file(str(student / PSEUDO_LABELS))
    train = load("digits").train
    _, unlabelled = labelled_split(train, 0.1, 0)
    probabilities = teacher_probabilities(teacher, train.images[unlabelled])  # on the CPU
    # Labelled on the GPU in cuDNN's default TF32, compared with the CPU's fp32: within 2e-3, while a
    # wrong normalisation or a shuffled index would move them by tenths.
    assert torch.allclose(kept["probabilities"], probabilities[kept["index"]], atol=2e-3)
    assert _scores_as_trained(student, chain["rounds"][-1]["test_top1"])


def test_frozen_stages_leave_cuda_training_as_they_came(tmp_path) -> None:
    source = tmp_path / "digits04"
    train_run("lenet5", "digits@0-4", out=str(source), recipe_name="digits", overrides=("epochs=2", "data.input_size=32"),
              console=QUIET, device="cuda")
    before = run_digest(source)
    train_run("lenet5", "digits@5-9", out=str(tmp_path / "tuned"), recipe_name=str(source / "recipe.yaml"),
              overrides=(f"paradigm.finetune.source={json.dumps(str(source))}", "epochs=2",
                         "paradigm.finetune.freeze_until=conv2", "paradigm.finetune.lr_decay=0.5"),
              console=QUIET, device="cuda")
    theirs = load_file(str(source / "checkpoints" / "last" / "model.safetensors"))
    ours = load_file(str(tmp_path / "tuned" / "checkpoints" / "last" / "model.safetensors"))
    for key in theirs:
        if key.startswith(("conv1", "conv2")):
            assert torch.equal(theirs[key], ours[key]), key
        elif key.startswith("fc1"):
            assert not torch.equal(theirs[key], ours[key]), key
    assert run_digest(source) == before


def test_snapshots_and_swa_on_cuda(tmp_path) -> None:
    snapshot = ("epochs=4", "schedule.name=cyclic", "schedule.cycles=2", "paradigm.snapshot.enabled=true")
    train_run(out=str(tmp_path / "snap"), overrides=snapshot, console=QUIET, device="cuda")
    assert snapshots_of(tmp_path / "snap") == ["snapshot-1", "snapshot-2"]
    assert evaluate_ensemble([tmp_path / "snap"], snapshots=True, device="cuda")["images"] == 359
    swa = ("epochs=4", "paradigm.swa.start_epoch=2", "schedule.name=constant", "optim.lr=0.01")
    result = train_run(out=str(tmp_path / "swa"), overrides=swa, console=QUIET, device="cuda")
    assert result["weights"]["checkpoint"] == "swa"
    assert _scores_as_trained(tmp_path / "swa", result["test_top1"])


@pytest.mark.parametrize(("name", "size"), [("lenet5", (1, 32, 32)), ("vgg11", (3, 224, 224)), ("resnet20", (3, 32, 32))])
def test_fully_convolutional_on_cuda_under_the_default_tf32_convolutions(name, size) -> None:
    # cuDNN convolves in TF32 by default on Hopper while the dense head multiplies in fp32: the check
    # must compare the two at full precision, and leave the user's flags as they were.
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=size[0]).cuda().eval()
    flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    converted = fully_convolutional(model, size)
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == flags
    x = torch.randn(2, *size, device="cuda")
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        assert torch.allclose(converted.logits(x), model(x), atol=1e-4, rtol=1e-4)
