"""SIGKILL and SIGINT at 20 seeded random moments of a CPU run, resuming each time: the end equals an unbroken run."""

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnlab.runs.checkpoint import load_checkpoint

OVERRIDES = ["epochs=30", "deterministic=true", "augment.crop_padding=1", "ema_decay=0.9"]  # ~0.5 s an epoch: kills land all along
TIMING = {"seconds", "images_per_second"}


def _command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "cnnlab", "train", "--device", "cpu", *argv]


def _rows(run: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader((run / "metrics.csv").open())]


@pytest.mark.slow
def test_twenty_kills_and_interrupts_end_like_an_unbroken_run(tmp_path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    whole = tmp_path / "whole"
    subprocess.run(_command("--out", str(whole), *OVERRIDES), check=True, capture_output=True, env=env, timeout=300)
    rng = random.Random(0)
    run, interrupted, attempts = tmp_path / "broken", 0, 0
    while interrupted < 20 and attempts < 80:
        attempts += 1
        if not (run / "recipe.yaml").is_file() or not (run / "data.json").is_file():
            shutil.rmtree(run, ignore_errors=True)  # killed before training began: the error says to start again
            argv = _command("--out", str(run), *OVERRIDES)
        else:
            argv = _command("--resume", str(run))
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(rng.uniform(3.0, 8.0))  # after start-up: inside epochs, validation and checkpoint writes
        if process.poll() is None:
            process.send_signal(rng.choice([signal.SIGKILL, signal.SIGINT]))
            interrupted += 1
        process.wait(timeout=120)
    assert interrupted == 20
    done = subprocess.run(_command("--resume", str(run)), capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    for name in ("last", "best"):
        a = load_file(str(whole / "checkpoints" / name / "model.safetensors"))
        b = load_file(str(run / "checkpoints" / name / "model.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    ca, cb = (load_checkpoint(r / "checkpoints" / "last")[0]["counters"] for r in (whole, run))
    assert ca["step"] == cb["step"] and ca["epoch"] == cb["epoch"] == 30 and ca["best"] == cb["best"]
    assert _rows(whole) == _rows(run)
