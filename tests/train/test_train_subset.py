"""`data.train_images`: a seeded, stated subset of the training split; validation and test untouched."""

from __future__ import annotations

import json
import os

import pytest
from rich.console import Console

from cnnlab.errors import CnnlabError
from cnnlab.train.run import train_run

QUIET = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives for the test session


def test_a_subset_trains_on_exactly_that_many_images(tmp_path) -> None:
    runs = {}
    for name, seed in (("a", 0), ("b", 0)):
        train_run(out=str(tmp_path / name), overrides=("epochs=1", "data.train_images=150", f"seed={seed}"), console=QUIET)
        runs[name] = json.loads((tmp_path / name / "data.json").read_text())
    assert runs["a"]["train_images"] == 150 and runs["a"]["test_images"] == 359
    full = train_run(out=str(tmp_path / "full"), overrides=("epochs=1",), console=QUIET)
    assert json.loads((tmp_path / "full" / "data.json").read_text())["val_images"] == runs["a"]["val_images"]
    assert full["epochs"] == 1
    # One seed, one subset: the two runs train on the same images and end alike.
    a, b = (json.loads((tmp_path / n / "summary.json").read_text()) for n in ("a", "b"))
    assert a["test_loss"] == b["test_loss"]


def test_more_images_than_the_split_holds_is_one_line(tmp_path) -> None:
    with pytest.raises(CnnlabError, match=r"data.train_images=5000 but the training split holds \d+ images: use at most"):
        train_run(out=str(tmp_path / "big"), overrides=("epochs=1", "data.train_images=5000"), console=QUIET)
    with pytest.raises(CnnlabError, match="data.train_images must be >= 1"):
        train_run(out=str(tmp_path / "zero"), overrides=("epochs=1", "data.train_images=0"), console=QUIET)
