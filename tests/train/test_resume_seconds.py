"""summary.json's training_seconds adds up every session of a resumed run, not only the last."""

import csv
import json
import shutil
import time
from pathlib import Path

import pytest
from rich.console import Console

from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.train.run import train_run
from tests.train.interrupting import interrupt_at_step

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
LEGACY = Path(__file__).parents[1] / "runs" / "fixtures" / "digits-run-v0.1.0"  # its checkpoints kept no seconds
OVERRIDES = ("epochs=3", "data.train_images=320")  # a few small epochs: the sums, not the speed, are tested
STEPS_PER_EPOCH = 5  # 320 training images, batch 64
TOLERANCE = 2e-3  # summary.json rounds to the millisecond


def _epoch_seconds(run: Path) -> dict[int, float]:
    """Return metrics.csv's training seconds of each epoch (validation excluded)."""
    return {int(row["epoch"]): float(row["seconds"]) for row in csv.DictReader((run / "metrics.csv").open())}


def test_training_seconds_add_up_after_ctrl_c_and_resume(tmp_path) -> None:
    run = tmp_path / "interrupted"
    with pytest.MonkeyPatch.context() as patch:
        interrupt_at_step(patch, 2 * STEPS_PER_EPOCH + 2)  # Ctrl-C in epoch 3 of 3: two epochs kept
        with pytest.raises(KeyboardInterrupt):
            train_run(out=str(run), overrides=OVERRIDES, console=QUIET)
    counters = load_checkpoint(run / "checkpoints" / "last")[0]["counters"]
    first = counters["seconds"]  # the first session's two epochs, training and validation
    assert counters["epoch"] == 2 and first >= sum(_epoch_seconds(run).values()) > 0
    started = time.perf_counter()
    summary = train_run(resume=str(run), console=QUIET)
    second_wall = time.perf_counter() - started
    epochs = _epoch_seconds(run)
    assert sorted(epochs) == [1, 2, 3] and summary["epochs"] == 3
    second = epochs[3]  # the resumed session's training time (a lower bound of what it counts)
    recorded = json.loads((run / "summary.json").read_text())["training_seconds"]
    assert recorded == summary["training_seconds"]
    assert recorded >= first + second - TOLERANCE
    assert recorded >= sum(epochs.values()) - TOLERANCE
    assert recorded <= first + second_wall + TOLERANCE  # the resumed session counted once, not more


def test_a_first_release_run_keeps_its_training_seconds_when_resumed(tmp_path) -> None:
    run = tmp_path / "legacy"
    shutil.copytree(LEGACY, run)
    before = json.loads((LEGACY / "summary.json").read_text())["training_seconds"]
    assert "seconds" not in load_checkpoint(run / "checkpoints" / "last")[0]["counters"]
    summary = train_run(resume=str(run), console=QUIET)  # finished: nothing to train, scored again
    assert summary["training_seconds"] == before == 0.574  # was 0.0: the first release's time lost


def test_a_first_release_run_without_summary_counts_its_metrics_seconds(tmp_path) -> None:
    run = tmp_path / "legacy"
    shutil.copytree(LEGACY, run)
    (run / "summary.json").unlink()  # stopped after its last checkpoint, before its summary
    summary = train_run(resume=str(run), console=QUIET)
    assert summary["training_seconds"] == pytest.approx(sum(_epoch_seconds(LEGACY).values()), abs=TOLERANCE)
