"""`cnnlab attack` end to end on a small trained run (digits)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.cli.numeric import Fraction


def test_attack_writes_examples_curve_and_table(capsys, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "--out", str(run_dir), "--epochs", "3"]) == 0
    capsys.readouterr()
    code = main(["attack", str(run_dir), "--method", "pgd", "--eps", "0.3", "--steps", "10", "--count", "200",
                 "--eps-list", "0,0.1,0.3", "--out", str(tmp_path / "a")])
    out = capsys.readouterr().out
    assert code == 0 and "pgd eps 0.3 (linf) on 200 test images" in out
    report = json.loads((tmp_path / "a" / "accuracy.json").read_text())
    assert report["adversarial_accuracy"] < report["clean_accuracy"]
    assert report["max_perturbation"] <= 0.3 + 1e-5
    curves = report["curves"]
    assert [p["eps"] for p in curves["pgd"]] == [0.0, 0.1, 0.3]
    assert curves["pgd"][-1]["accuracy"] <= curves["fgsm"][-1]["accuracy"]
    for name in ("examples.png", "curve.png"):
        assert (tmp_path / "a" / name).stat().st_size > 5000
    code = main(["attack", str(run_dir), "--method", "fgsm", "--eps", "8/255", "--target", "3", "--count", "50", "--out", str(tmp_path / "b")])
    assert code == 0 and "target_hit_rate" in json.loads((tmp_path / "b" / "accuracy.json").read_text())
    assert main(["attack", str(run_dir), "--eps", "x/2"]) == 2
    assert "not a number" in capsys.readouterr().err


def test_parse_eps() -> None:
    assert Fraction()("8/255") == pytest.approx(8 / 255) and Fraction()("0.3") == 0.3
    for word, reason in (("-1", ">= 0"), ("nan", "finite"), ("inf", "finite"), ("1/0", "not a number")):
        with pytest.raises(argparse.ArgumentTypeError, match=reason):
            Fraction()(word)
