"""Checkpoints are written whole: a process killed at any moment leaves one complete checkpoint."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.runs import checkpoint
from cnnlab.runs.checkpoint import load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def _save(directory: Path, epoch: int) -> None:
    model = nn.Linear(3, 2)
    nn.init.constant_(model.weight, float(epoch))
    save_checkpoint(directory, model, {"step": torch.tensor(epoch)}, {"epoch": epoch})


def test_crash_between_the_two_renames_keeps_the_previous(tmp_path, monkeypatch) -> None:
    last = tmp_path / "last"
    _save(last, 1)
    real_replace = os.replace
    calls = []

    def dies_after_first_rename(src, dst):
        real_replace(src, dst)
        calls.append(dst)
        if len(calls) == 1:
            raise SystemExit("killed")  # the old checkpoint is moved aside, the new one not yet in

    monkeypatch.setattr(checkpoint.os, "replace", dies_after_first_rename)
    with pytest.raises(SystemExit):
        _save(last, 2)
    monkeypatch.setattr(checkpoint.os, "replace", real_replace)
    assert not last.exists()
    model = nn.Linear(3, 2)
    _, info = load_checkpoint(last, model)  # the previous one comes back, complete
    assert info["epoch"] == 1 and torch.all(model.weight == 1.0)
    _save(last, 3)
    assert load_checkpoint(last)[1]["epoch"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


WRITER = """
import sys, torch
from pathlib import Path
from torch import nn
from cnnlab.runs.checkpoint import save_checkpoint
model = nn.Linear(256, 256)
epoch = 0
while True:
    epoch += 1
    save_checkpoint(Path(sys.argv[1]), model, {"w": torch.randn(256, 256)}, {"epoch": epoch})
    print(epoch, flush=True)
"""


def test_sigkill_at_random_moments_leaves_a_readable_checkpoint(tmp_path) -> None:
    last = tmp_path / "last"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for delay in (0.7, 0.93, 1.21):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(last)], env=env, stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None
        writer.stdout.readline()  # at least one checkpoint exists before the kill
        time.sleep(delay - 0.5)
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        _, info = load_checkpoint(last, nn.Linear(256, 256))
        assert info["epoch"] >= 1
