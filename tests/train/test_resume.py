"""Resume after Ctrl-C, kills and failed writes: bit-exact weights, one metrics row per kept epoch, summed time."""

import csv
import json
import shutil

import pytest
import torch
from rich.console import Console
from safetensors.torch import load_file

from cnnlab.errors import CnnlabError
from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.runs.rundir import mend_metrics
from cnnlab.train.run import train_run
from tests.train.interrupting import interrupt_at_step

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
OVERRIDES = ("epochs=3", "deterministic=true", "augment.crop_padding=1", "ema_decay=0.9")
TIMING = {"seconds", "images_per_second"}


def _rows(run) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader((run / "metrics.csv").open())]


def _same_end(a, b) -> None:
    for name in ("last", "best"):
        wa, wb = load_file(str(a / "checkpoints" / name / "model.safetensors")), load_file(str(b / "checkpoints" / name / "model.safetensors"))
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), name
    ca, cb = (load_checkpoint(r / "checkpoints" / "last")[0]["counters"] for r in (a, b))
    assert {k: v for k, v in ca.items() if k not in ("seconds", "last_row")} == \
           {k: v for k, v in cb.items() if k not in ("seconds", "last_row")}
    assert _rows(a) == _rows(b)


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "whole"
    return out, train_run(out=str(out), overrides=OVERRIDES, console=QUIET)


def test_ctrl_c_mid_epoch_then_resume_is_bit_exact(unbroken, tmp_path, monkeypatch) -> None:
    undo = interrupt_at_step(monkeypatch, 30)  # Ctrl-C during step 30: step 9 of epoch 2 (21 steps an epoch)
    with pytest.raises(KeyboardInterrupt):
        train_run(out=str(tmp_path / "part"), overrides=OVERRIDES, console=QUIET)
    undo()
    assert load_checkpoint(tmp_path / "part" / "checkpoints" / "last")[1]["epoch"] == 1  # the boundary, not step 30
    assert [r["epoch"] for r in _rows(tmp_path / "part")] == ["1"]
    resumed = train_run(resume=str(tmp_path / "part"), console=QUIET)
    _same_end(unbroken[0], tmp_path / "part")
    assert resumed["test_loss"] == unbroken[1]["test_loss"] and resumed["epochs"] == 3
    assert load_checkpoint(tmp_path / "part" / "checkpoints" / "last")[0]["counters"]["step"] == 3 * 21  # 1,294 images, batch 64


def test_ctrl_c_in_the_first_epoch_resumes_from_the_start(unbroken, tmp_path, monkeypatch) -> None:
    from cnnlab.train import engine

    real = engine.augment_batch
    monkeypatch.setattr(engine, "augment_batch", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        train_run(out=str(tmp_path / "early"), overrides=OVERRIDES, console=QUIET)
    monkeypatch.setattr(engine, "augment_batch", real)
    assert load_checkpoint(tmp_path / "early" / "checkpoints" / "last")[1]["epoch"] == 0  # the starting point
    train_run(resume=str(tmp_path / "early"), console=QUIET)
    _same_end(unbroken[0], tmp_path / "early")


def test_a_failed_checkpoint_write_keeps_the_last_one_and_the_metrics(unbroken, tmp_path, monkeypatch) -> None:
    import errno

    from cnnlab.runs import checkpoint

    real = checkpoint.save_file
    writes = {"n": 0}

    def disk_fills(tensors, path, *args, **kwargs):  # the 3rd checkpoint write (epoch 2's last) finds the disk full
        writes["n"] += 1
        if writes["n"] == 7:  # epoch 0: 2 files, epoch 1: last + best = 4, then epoch 2's first file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", disk_fills)
    with pytest.raises(CnnlabError, match=r"cannot write checkpoint .*No space left on device.*previous checkpoint is kept") as error:
        train_run(out=str(tmp_path / "full"), overrides=OVERRIDES, console=QUIET)
    assert "\n" not in str(error.value)
    monkeypatch.setattr(checkpoint, "save_file", real)
    assert load_checkpoint(tmp_path / "full" / "checkpoints" / "last")[1]["epoch"] == 1
    assert [r["epoch"] for r in _rows(tmp_path / "full")] == ["1"]  # no row for weights that were not kept
    assert not [p for p in (tmp_path / "full" / "checkpoints").iterdir() if p.name.startswith(".")]
    train_run(resume=str(tmp_path / "full"), console=QUIET)
    _same_end(unbroken[0], tmp_path / "full")


def test_metrics_are_mended_to_the_checkpoint(tmp_path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,train_loss\n1,0.5\n2,0.4\n2,0.4\n3,0.3\n")  # a kill after row 3, before its checkpoint
    mend_metrics(path, 2, {"epoch": 2, "train_loss": 0.4})
    assert path.read_text() == "epoch,train_loss\n1,0.5\n2,0.4\n"
    mend_metrics(path, 3, {"epoch": 3, "train_loss": 0.25})  # a kill after checkpoint 3, before its row
    assert path.read_text() == "epoch,train_loss\n1,0.5\n2,0.4\n3,0.25\n"
    mend_metrics(path, 0, {})
    assert not path.exists()


def test_training_seconds_add_up_over_resumes(unbroken, tmp_path) -> None:
    run = tmp_path / "again"
    shutil.copytree(unbroken[0], run)
    again = train_run(resume=str(run), console=QUIET)  # finished: nothing to train, scored again
    assert again["training_seconds"] == unbroken[1]["training_seconds"] > 0.1


def test_resume_recovers_a_checkpoint_left_retired(unbroken, tmp_path) -> None:
    run = tmp_path / "retired"
    shutil.copytree(unbroken[0], run)
    (run / "checkpoints" / "last").rename(run / "checkpoints" / ".last-retired")  # killed between the renames
    assert train_run(resume=str(run), console=QUIET)["epochs"] == 3
    assert (run / "checkpoints" / "last").is_dir()


def test_a_run_killed_before_its_first_checkpoint_starts_afresh(unbroken, tmp_path) -> None:
    run = tmp_path / "unborn"
    shutil.copytree(unbroken[0], run)
    shutil.rmtree(run / "checkpoints")
    (run / "metrics.csv").unlink()
    train_run(resume=str(run), console=QUIET)
    _same_end(unbroken[0], run)
    (run / "data.json").unlink()
    with pytest.raises(CnnlabError, match="stopped before training began.*--out"):
        train_run(resume=str(run), console=QUIET)
    assert json.loads((unbroken[0] / "summary.json").read_text())["epochs"] == 3
