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

KILLS = 20
# Every attempt adds at most two epochs (see the test), so a run of 2 * KILLS + 1 epochs cannot finish
# between the kills on any CPU, however its speed changes while the test runs.
EPOCHS = 2 * KILLS + 1
OVERRIDES = [f"epochs={EPOCHS}", "deterministic=true", "augment.crop_padding=1", "ema_decay=0.9"]  # 0.2-0.5 s an epoch
TIMING = {"seconds", "images_per_second"}


def _command(*argv: str) -> list[str]:
    return [sys.executable, "-m", "cnnlab", "train", "--device", "cpu", *argv]


def _rows(run: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader((run / "metrics.csv").open())]


def _epochs(run: Path) -> int:
    """Return the epochs metrics.csv records (it is written after each epoch's checkpoint)."""
    path = run / "metrics.csv"
    return max(0, len(path.read_text().splitlines()) - 1) if path.is_file() else 0


def _timed_run(argv: list[str], run: Path, env: dict) -> tuple[float, float]:
    """Run an unbroken training and return (seconds to its first checkpoint, seconds an epoch)."""
    start = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    first_checkpoint = first_epoch = None
    while process.poll() is None:
        now = time.monotonic() - start
        if first_checkpoint is None and (run / "checkpoints" / "last").is_dir():
            first_checkpoint = now
        if first_epoch is None and _epochs(run) >= 1:
            first_epoch = now
        time.sleep(0.02)
    assert process.returncode == 0
    end = time.monotonic() - start
    first_checkpoint = first_checkpoint or 0.0
    return first_checkpoint, (end - (first_epoch or first_checkpoint)) / (EPOCHS - 1)


def _last_epoch_seconds(run: Path, fallback: float) -> float:
    """Return how long the epoch metrics.csv recorded last took, as the attempt itself measured it."""
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    try:
        return float(rows[-1]["seconds"])
    except (IndexError, KeyError, ValueError):
        return fallback


def _wait_for_epoch(process: subprocess.Popen, run: Path, epochs: int, seconds: float = float("inf")) -> bool:
    """Wait until metrics.csv records more than `epochs` epochs, or `seconds` pass; return False if the process ended first."""
    deadline = time.monotonic() + seconds
    while process.poll() is None:
        if _epochs(run) > epochs or time.monotonic() >= deadline:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_twenty_kills_and_interrupts_end_like_an_unbroken_run(tmp_path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    whole = tmp_path / "whole"
    startup, epoch = _timed_run(_command("--out", str(whole), *OVERRIDES), whole, env)
    # Each kill is timed from what the attempt itself has reached, so it lands where it should on a
    # fast CPU, a slow one, or one shared with other jobs: a quarter during start-up, the rest at a
    # random point of the epoch after the attempt's first new one, scaled by that new epoch's own
    # time in metrics.csv. Neither wait outlasts the epoch it aims at: a kill falls at once when the
    # attempt records one epoch more than the kill was meant for, so an attempt adds at most one
    # epoch during start-up and two otherwise. (CI once finished the run between kills: its first,
    # cold start-up took 21 s against 7 s for a warm resume, and a "start-up" kill slept through
    # all the remaining epochs.) The start-up estimate follows the fastest start-up seen so far.
    rng = random.Random(0)
    run, interrupted, attempts = tmp_path / "broken", 0, 0
    while interrupted < KILLS and attempts < 3 * KILLS:
        attempts += 1
        if not (run / "recipe.yaml").is_file() or not (run / "data.json").is_file():
            shutil.rmtree(run, ignore_errors=True)  # killed before training began: the error says to start again
            argv = _command("--out", str(run), *OVERRIDES)
        else:
            argv = _command("--resume", str(run))
        before = _epochs(run)
        began = time.monotonic()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if rng.random() < 0.25:
            _wait_for_epoch(process, run, before, rng.uniform(0.2, 0.9) * startup)
        elif _wait_for_epoch(process, run, before):
            last = _last_epoch_seconds(run, epoch)
            startup = min(startup, max(0.0, time.monotonic() - began - last))
            _wait_for_epoch(process, run, before + 1, rng.uniform(0.0, 0.8) * last)
        if process.poll() is None:
            process.send_signal(rng.choice([signal.SIGKILL, signal.SIGINT]))
            interrupted += 1
        process.wait(timeout=120)
    assert _epochs(run) < EPOCHS, "the run finished between kills: the kills did not all land inside it"
    assert interrupted == KILLS
    done = subprocess.run(_command("--resume", str(run)), capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-1500:]
    for name in ("last", "best"):
        a = load_file(str(whole / "checkpoints" / name / "model.safetensors"))
        b = load_file(str(run / "checkpoints" / name / "model.safetensors"))
        assert all(torch.equal(a[k], b[k]) for k in a), name
    ca, cb = (load_checkpoint(r / "checkpoints" / "last")[0]["counters"] for r in (whole, run))
    assert ca["step"] == cb["step"] and ca["epoch"] == cb["epoch"] == EPOCHS and ca["best"] == cb["best"]
    assert _rows(whole) == _rows(run)
