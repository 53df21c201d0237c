"""Data-parallel training through torchrun on CPU (gloo): two processes, one set of weights; which device `auto` means."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cnnlab.errors import CnnlabError
from cnnlab.train import distributed

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    # Keep each worker to one thread: two processes on a two-core CI machine.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def test_two_gloo_ranks_hold_identical_weights_after_steps(tmp_path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               str(ROOT / "tests" / "train" / "ddp_worker.py"), str(tmp_path)]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rank0, rank1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    start0, start1 = (load_file(str(tmp_path / f"initial{r}.safetensors")) for r in (0, 1))
    weights = [k for k in rank0 if k.endswith("weight")]
    assert any(not torch.equal(start0[k], start1[k]) for k in weights)  # the ranks began apart
    for key in rank0:  # weights and BatchNorm statistics alike
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=1e-6)  # and ended together
    assert any(not torch.equal(rank0[k], start0[k]) for k in weights)  # after real steps
    m0, m1 = ((tmp_path / f"metrics{r}.txt").read_text().split() for r in (0, 1))
    assert m0 == m1 and m0[2] == "4"  # the same global loss, accuracy and validation loss after 4 steps


def test_cli_devices_two_writes_one_run(tmp_path) -> None:
    out = tmp_path / "run"
    command = [sys.executable, "-m", "cnnlab", "train", "--devices", "2", "--device", "cpu", "--out", str(out),
               "epochs=2", "batch_size=64"]
    done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["test_top1"] > 0.5
    assert len((out / "metrics.csv").read_text().splitlines()) == 3  # header + one row per epoch, once
    assert not (tmp_path / "runs").exists()  # no stray run directory from the second rank


def test_cpu_processes_are_not_bounded_by_the_gpus(monkeypatch) -> None:
    # A one-GPU machine (as the lent H200 was) refused `--devices 2 --device cpu` before.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    commands = []
    monkeypatch.setattr(distributed.subprocess, "call", lambda command: commands.append(command) or 0)
    monkeypatch.delenv("CNNLAB_DEVICE")
    assert distributed.launch(["train", "--device", "cpu"], 2, "cpu") == 0
    assert "--nproc-per-node=2" in commands[0]
    with pytest.raises(CnnlabError, match="--devices 2 but this machine has 1 GPUs"):
        distributed.launch(["train"], 2, "auto")


def test_auto_honours_cnnlab_device(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CNNLAB_DEVICE", "cpu")
    assert distributed.local_device("auto") == torch.device("cpu")
    assert distributed.local_device("cuda:0") == torch.device("cuda:0")  # an explicit device wins
    monkeypatch.setenv("CNNLAB_DEVICE", "tpu9")
    with pytest.raises(CnnlabError, match="^CNNLAB_DEVICE 'tpu9' is not a device: use auto, cpu, cuda or cuda:N$"):
        distributed.local_device("auto")
    monkeypatch.setenv("CNNLAB_DEVICE", "auto")
    assert distributed.local_device("auto") == torch.device("cuda")
