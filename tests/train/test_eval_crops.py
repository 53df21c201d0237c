"""Training on random crops: validation and test views cut to evaluation.crop, ten crops averaged by hand."""

import pytest
import torch
from rich.console import Console

from cnnlab.data.tta import ten_crops
from cnnlab.errors import CnnlabError
from cnnlab.runs.load import load_run
from cnnlab.train.run import train_run

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
CROPS = ("epochs=3", "augment=[{op: flip}, {op: random_crop, size: 6}]", "evaluation.crop=6")


def test_ten_crop_score_is_the_mean_of_ten_crops_by_hand(tmp_path) -> None:
    out = tmp_path / "crops"
    result = train_run(out=str(out), overrides=(*CROPS, "evaluation.tta=10crop"), console=QUIET)
    run = load_run(out)
    test = run.test_split()
    with torch.no_grad():
        x = run.normalisation(test.images)
        logits = torch.stack([run.model(view) for view in ten_crops(x, 6)]).mean(0)
    assert round(result["test_top1"] * len(test)) == (logits.argmax(1) == test.labels).sum().item()
    assert result["tta"] == "10crop" and result["test_top1"] > 0.5


def test_a_size_changing_crop_needs_the_evaluation_crop(tmp_path) -> None:
    with pytest.raises(CnnlabError, match="set evaluation.crop=6 so that they are cut to it too"):
        train_run(out=str(tmp_path / "a"), overrides=CROPS[:2], console=QUIET)
    with pytest.raises(CnnlabError, match=r"views are 5x5: make evaluation.crop the size augment trains at \(6x6\)"):
        train_run(out=str(tmp_path / "b"), overrides=(*CROPS[:2], "evaluation.crop=5"), console=QUIET)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before a run directory was made
