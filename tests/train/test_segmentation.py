"""The task seam's second task: per-pixel segmentation through the same fit, run directory and eval."""

import csv
import json
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

from cnnlab.train.run import train_run
from cnnlab.train.tasks.segmentation import SegmentationTally, iou_per_class

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_iou_and_pixel_accuracy_by_hand() -> None:
    tally = SegmentationTally(3, torch.device("cpu"))
    truth = torch.tensor([[[0, 0, 1, 2]]])
    logits = torch.nn.functional.one_hot(torch.tensor([[[0, 1, 1, 1]]]), 3).permute(0, 3, 1, 2).float()  # predicts 0 1 1 1
    tally.add(logits, truth)
    # class 0: 1 / 2, class 1: 1 / 3, class 2: 0 / 1; pixels right: 2 of 4.
    assert iou_per_class(tally.matrix()).tolist() == pytest.approx([0.5, 1 / 3, 0.0])
    scores = tally.result()
    assert scores["pixel_acc"] == 0.5 and scores["miou"] == pytest.approx((0.5 + 1 / 3) / 3)


def test_segmentation_trains_end_to_end_and_eval_agrees(tmp_path) -> None:
    from cnnlab.train.evaluation import evaluate_run

    out = tmp_path / "seg"
    result = train_run("unet_small", "digits-seg", out=str(out), overrides=("epochs=2",), console=QUIET)
    data = json.loads((out / "data.json").read_text())
    assert data["task"] == "segmentation" and len(data["classes"]) == 11 and data["input_size"] == [1, 32, 32]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert list(rows[0])[:6] == ["epoch", "train_loss", "train_pixel_acc", "val_loss", "val_pixel_acc", "val_miou"]
    evaluation = evaluate_run(out)
    assert evaluation["miou"] == result["test_miou"] and evaluation["pixel_acc"] == result["test_pixel_acc"]
    assert evaluation["images"] == 400 and len(evaluation["per_class_iou"]) == 11
    from cnnlab.errors import CnnlabError

    with pytest.raises(CnnlabError, match="augment mixup cannot move masks"):  # a blended mask means nothing
        train_run("unet_small", "digits-seg", out=str(tmp_path / "aug"), overrides=("augment=[{op: mixup}]",),
                  console=QUIET)
    assert not (tmp_path / "aug").exists()  # refused before anything was written
    with pytest.raises(CnnlabError, match="predict classifies images"):
        from cnnlab.runs.load import load_run
        from cnnlab.train.evaluation import predict

        predict(load_run(out), [str(tmp_path / "x.png")])


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "train-images-idx3-ubyte.gz").exists(), reason="../shared/data not present")
def test_unet_beats_a_1x1_convolution_on_mnist_canvases() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from segmentation_mnist import run

    result = run("mnist-seg", str(SHARED))
    assert result["miou_gap"] >= 0.3, result


def test_segmentation_trains_with_masks_moving_and_ignores_what_comes_in(tmp_path) -> None:
    from cnnlab.train.tasks.segmentation import Segmentation

    result = train_run("unet_small", "digits-seg", out=str(tmp_path / "aug"), console=QUIET,
                       overrides=("epochs=1", "data.train_images=256", "augment=[{op: translate, padding: 8}, {op: flip}]"))
    assert 0 <= result["test_miou"] <= 1
    task = Segmentation(3)
    logits = torch.zeros(1, 3, 1, 4)
    logits[0, 1] = 5.0  # predicts class 1 everywhere
    target = torch.tensor([[[1, 255, 255, 0]]], dtype=torch.uint8)
    correct, counted = task.hits(logits, target)
    assert (int(correct), int(counted)) == (1, 2)  # the two IGNORE pixels count in neither
    loss, _ = task.loss(logits, target)
    expected = torch.nn.functional.cross_entropy(logits[0, :, 0, [0, 3]].T, torch.tensor([1, 0]))
    assert torch.isclose(loss, expected)
