"""Resume is exact for every task: Ctrl-C mid-epoch and kill -9 mid-run, then resume, end like an unbroken run."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.train.run import train_run
from tests.train.interrupting import interrupt_at_step

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
ROOT = Path(__file__).resolve().parents[2]
#: (model, data, overrides, steps an epoch) of one small run per task.
TASKS = {
    "classification": ("small_cnn", "digits", ("epochs=3", "deterministic=true", "data.train_images=512", "batch_size=64"), 8),
    "segmentation": ("unet_small", "digits-seg", ("epochs=3", "deterministic=true", "data.train_images=512", "batch_size=64"), 8),
    "detection": ("yolo_v1", "digits-det", ("epochs=3", "deterministic=true", "data.train_images=512", "batch_size=64"), 8),
}
TIMING = {"seconds", "images_per_second"}


def _rows(run: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader((run / "metrics.csv").open())]


def _same_end(a: Path, b: Path) -> None:
    for name in ("last", "best"):
        wa = load_file(str(a / "checkpoints" / name / "model.safetensors"))
        wb = load_file(str(b / "checkpoints" / name / "model.safetensors"))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
    ca, cb = (load_checkpoint(r / "checkpoints" / "last")[0]["counters"] for r in (a, b))
    assert {k: v for k, v in ca.items() if k not in ("seconds", "last_row")} == \
           {k: v for k, v in cb.items() if k not in ("seconds", "last_row")}
    assert _rows(a) == _rows(b)


# Detection's Ctrl-C resume runs with every `make test`; the kills, and the other two tasks (which
# tests/train/test_resume.py and the fault-injection test cover as well), run with `make test-slow`.
@pytest.fixture(scope="module", params=[pytest.param(task, marks=[] if task == "detection" else [pytest.mark.slow])
                                        for task in TASKS])
def unbroken(request, tmp_path_factory) -> tuple[str, Path, dict]:
    model, data, overrides, _ = TASKS[request.param]
    out = tmp_path_factory.mktemp(request.param) / "whole"
    return request.param, out, train_run(model, data, out=str(out), overrides=overrides, console=QUIET)


def test_ctrl_c_mid_epoch_then_resume_is_bit_exact(unbroken, tmp_path, monkeypatch) -> None:
    task, whole, summary = unbroken
    model, data, overrides, steps = TASKS[task]
    undo = interrupt_at_step(monkeypatch, steps + 3)  # Ctrl-C during the 4th step of epoch 2
    with pytest.raises(KeyboardInterrupt):
        train_run(model, data, out=str(tmp_path / "part"), overrides=overrides, console=QUIET)
    undo()
    assert load_checkpoint(tmp_path / "part" / "checkpoints" / "last")[1]["epoch"] == 1
    resumed = train_run(resume=str(tmp_path / "part"), console=QUIET)
    _same_end(whole, tmp_path / "part")
    assert resumed["test_loss"] == summary["test_loss"] and resumed["epochs"] == 3


@pytest.mark.slow  # a process start and a kill per task: with `make test-slow`
def test_kill_9_mid_run_then_resume_is_bit_exact(unbroken, tmp_path) -> None:
    task, whole, summary = unbroken
    model, data, overrides, _ = TASKS[task]
    run = tmp_path / "killed"
    argv = [sys.executable, "-m", "cnnlab", "train", model, "--data", data, "--out", str(run), *overrides]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
                               env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if (run / "metrics.csv").is_file() and len(_rows(run)) >= 1:
            break  # epoch 1 is written: the kill lands in epoch 2
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert len(_rows(run)) < 3
    resumed = train_run(resume=str(run), console=QUIET)
    _same_end(whole, run)
    assert resumed["test_loss"] == summary["test_loss"]
