"""Hostile run directories and places to write: one line naming the file and the fix, exit 2, nothing lost."""

import errno
import json
import shutil
from pathlib import Path

import pytest

from cnnlab.cli import main

LEGACY = Path(__file__).parent / "fixtures" / "digits-run-v0.1.0"


def _run(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def _one_line(code: int, err: str) -> None:
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


@pytest.mark.parametrize("damage, message", [
    (lambda run: (run / "checkpoints" / "best" / "model.safetensors").write_bytes(b"\x80\x04\x95pickle"), "cannot be loaded"),
    (lambda run: (run / "checkpoints" / "best" / "state.json").write_text("{garbage"), "cannot be loaded"),
    (lambda run: (run / "checkpoints" / "best" / "state.json").write_text("[]"), "cannot be loaded"),
    (lambda run: (run / "data.json").write_text('{"spec": 3}'), "data.json"),
    (lambda run: (run / "data.json").write_text(json.dumps({**json.loads((LEGACY / "data.json").read_text()),
                                                            "input_size": [3, 8, 8]})), "inconsistent"),
    (lambda run: shutil.rmtree(run / "checkpoints" / "best" ) or (run / "checkpoints" / "best").mkdir(), "not a complete checkpoint"),
])
def test_damaged_run_files_are_one_line(capsys, tmp_path, damage, message: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(LEGACY, run)
    damage(run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    code, err = _run(capsys, "eval", str(run), "--device", "cpu")
    _one_line(code, err)
    assert message in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing changed or lost


def test_resume_of_a_damaged_state_is_one_line(capsys, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(LEGACY, run)
    state = json.loads((run / "checkpoints" / "last" / "state.json").read_text())
    state["state"] = {"__dict__": []}  # a mapping without the optimiser, schedulers and counters
    (run / "checkpoints" / "last" / "state.json").write_text(json.dumps(state))
    code, err = _run(capsys, "train", "--resume", str(run), "--device", "cpu")
    _one_line(code, err)
    assert "does not hold this run's training state" in err


def test_out_below_a_file_is_one_line(capsys, tmp_path) -> None:
    (tmp_path / "file").write_text("keep")
    code, err = _run(capsys, "train", "--out", str(tmp_path / "file" / "run"), "--epochs", "1")
    _one_line(code, err)
    assert (tmp_path / "file").read_text() == "keep"


def test_read_only_places_are_one_line(capsys, tmp_path, monkeypatch) -> None:
    # Tests run as root, which ignores chmod: the read-only file system is injected where files are written.
    from cnnlab.runs import rundir

    run = tmp_path / "run"
    shutil.copytree(LEGACY, run)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(run / "eval.json"))

    monkeypatch.setattr(rundir.tempfile, "NamedTemporaryFile", read_only)
    monkeypatch.setattr(rundir.tempfile, "mkstemp", read_only)  # cnnlab.runs.outputs writes every command's files
    code, err = _run(capsys, "eval", str(run), "--device", "cpu")
    _one_line(code, err)
    assert "Read-only file system" in err and not (run / "eval.json").exists()
    code, err = _run(capsys, "train", "--resume", str(run), "--device", "cpu")
    _one_line(code, err)
    assert "Read-only file system" in err


def test_an_input_that_cannot_fit_is_refused_before_allocating(capsys, tmp_path) -> None:
    code, err = _run(capsys, "train", "--out", str(tmp_path / "huge"), "input_pad=100000", "--epochs", "1")
    _one_line(code, err)
    assert "input_pad=100000" in err and "GB" in err and not (tmp_path / "huge").exists()
    code, err = _run(capsys, "train", "--out", str(tmp_path / "seed"), "seed=18446744073709551616")
    _one_line(code, err)
    assert "seed must lie in" in err


def test_bf16_on_a_cpu_without_bf16_instructions_warns(capsys, tmp_path, monkeypatch) -> None:
    from cnnlab.train import session

    for native, warned in ((False, True), (True, False)):
        monkeypatch.setattr(session, "cpu_has_bf16", lambda native=native: native)
        argv = ["train", "--out", str(tmp_path / f"bf16-{native}"), "--epochs", "1", "--device", "cpu", "precision=bf16"]
        assert main(argv) == 0
        assert ("without bf16 instructions" in capsys.readouterr().out) is warned
