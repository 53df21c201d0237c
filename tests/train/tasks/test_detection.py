"""The detection task: decoding candidates, its tally's COCO figures, what it refuses, a run end to end."""

import csv
import json

import numpy as np
import pytest
import torch
from rich.console import Console

from cnnlab.errors import CnnlabError
from cnnlab.models.detector import DetectorOutput
from cnnlab.runs.info import TaskName
from cnnlab.train.tasks import Detection, task_of_targets
from cnnlab.train.tasks.coco_ap import Detected, Truth, evaluate
from cnnlab.train.tasks.detection import DetectionTally
from cnnlab.train.tasks.postprocess import detect

QUIET = Console(file=open("/dev/null", "w"))  # noqa: SIM115 - lives for the test session


class Fixed(DetectorOutput):
    """Candidates given outright, as a detector would score them."""

    def __init__(self, boxes: torch.Tensor, scores: torch.Tensor) -> None:
        self.boxes, self.scores = boxes, scores

    def loss(self, targets: torch.Tensor) -> torch.Tensor:
        return self.scores.sum() * 0 + 1.5

    def hits(self, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tensor(0), torch.tensor(1)

    def candidates(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.boxes, self.scores

    def float(self) -> "Fixed":
        return self


def _targets() -> torch.Tensor:
    return torch.tensor([
        [[0, 10.0, 10.0, 40.0, 40.0], [2, 50.0, 50.0, 90.0, 80.0], [-1, -1, -1, -1, -1]],
        [[1, 5.0, 60.0, 30.0, 100.0], [-1, -1, -1, -1, -1], [-1, -1, -1, -1, -1]],
    ])


def test_box_rows_mean_detection() -> None:
    assert task_of_targets(_targets()) is TaskName.DETECTION
    assert task_of_targets(torch.zeros(3, 8, 8, dtype=torch.uint8)) is TaskName.SEGMENTATION


def test_each_detection_names_its_candidate_and_class() -> None:
    torch.manual_seed(0)
    boxes = torch.rand(2, 50, 4) * 60
    boxes[..., 2:] += boxes[..., :2] + 1
    scores = torch.rand(2, 50, 3)
    for image, found in enumerate(detect(boxes, scores, score_threshold=0.3, iou_threshold=0.5, top_k=20)):
        assert len(found.scores) <= 20 and (found.scores >= 0.3).all()
        assert torch.equal(found.boxes, boxes[image][found.index // 3])
        assert torch.equal(found.classes, found.index % 3)
        assert torch.equal(found.scores, scores[image].reshape(-1)[found.index])


def test_a_perfect_detector_scores_ap_one_and_the_tally_agrees_with_coco_ap() -> None:
    targets = _targets()
    boxes = targets[..., 1:].clone()
    scores = torch.nn.functional.one_hot(targets[..., 0].clamp_min(0).long(), 3).float()
    scores[targets[..., 0] < 0] = 0.0  # padding rows score nothing
    tally = DetectionTally(3, torch.device("cpu"), full=True)
    tally.add(Fixed(boxes, scores), targets)
    result = tally.result()
    assert [result[k] for k in ("ap", "ap50", "ap75")] == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    assert result["loss"] == 1.5
    # Shifted boxes: the tally's figures are COCO's on the same boxes.
    shifted = boxes + torch.tensor([4.0, 0.0, 4.0, 0.0])
    tally = DetectionTally(3, torch.device("cpu"), full=True)
    tally.add(Fixed(shifted, scores * 0.9), targets)
    truths = [Truth(t[t[:, 0] >= 0, 1:].double().numpy(), t[t[:, 0] >= 0, 0].long().numpy(), np.zeros(int((t[:, 0] >= 0).sum()), bool),
                    ((t[t[:, 0] >= 0, 3] - t[t[:, 0] >= 0, 1]) * (t[t[:, 0] >= 0, 4] - t[t[:, 0] >= 0, 2])).double().numpy())
              for t in targets]
    found = [Detected(shifted[i, targets[i, :, 0] >= 0].double().numpy(), np.full(int((targets[i, :, 0] >= 0).sum()), 0.9),
                      targets[i, targets[i, :, 0] >= 0, 0].long().numpy()) for i in range(2)]
    expected = evaluate(truths, found, range(3))
    assert tally.evaluation().stats == pytest.approx(expected.stats)
    report = tally.report(("a", "b", "c"))
    assert report["per_class_ap"] == pytest.approx(dict(zip("abc", expected.per_class_ap().values(), strict=True)))
    assert len(report["pr_curves"]["recall"]) == 101 and set(report["pr_curves"]["precision"]) == {"a", "b", "c"}


def test_validation_computes_a_twelfth_and_agrees_on_what_it_computes() -> None:
    targets = _targets()
    boxes = targets[..., 1:] + 3.0
    scores = torch.full((2, 3, 3), 0.5)
    quick, full = DetectionTally(3, torch.device("cpu")), DetectionTally(3, torch.device("cpu"), full=True)
    for tally in (quick, full):
        tally.add(Fixed(boxes, scores), targets)
    assert quick.result() == full.result()
    assert quick.evaluation().stats["AP_small"] == -1.0 and full.evaluation().stats["AP_small"] >= 0


@pytest.mark.parametrize(("override", "words"), [
    ("augment=[{op: randaugment}]", "augment randaugment cannot move boxes"), ("tta=flip", "no test-time augmentation"),
    ("augment=[{op: center_crop, size: 32}]", "changes the image size"),
    ("label_smoothing=0.1", "label smoothing is a classifier's"), ("adversarial.method=fgsm", "adversarial training"),
])
def test_what_detection_refuses_is_one_line(override: str, words: str) -> None:
    from cnnlab.runs.recipe import load_recipe

    recipe = load_recipe("default", [override])
    with pytest.raises(CnnlabError, match=words):
        Detection(10).check(recipe)


def test_yolo_trains_on_digit_scenes_and_eval_agrees(tmp_path) -> None:
    from cnnlab.train.evaluation import evaluate_run
    from cnnlab.train.run import train_run

    out = tmp_path / "det"
    result = train_run("yolo_v1", "digits-det", out=str(out), overrides=("epochs=2", "data.train_images=256"), console=QUIET)
    data = json.loads((out / "data.json").read_text())
    assert data["task"] == "detection" and data["input_size"] == [1, 96, 96] and len(data["classes"]) == 10
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert list(rows[0])[:7] == ["epoch", "train_loss", "train_cls_acc", "val_loss", "val_ap", "val_ap50", "val_ap75"]
    evaluation = evaluate_run(out)
    assert evaluation["ap"] == result["test_ap"] and evaluation["ap50"] == result["test_ap50"]
    assert len(evaluation["stats"]) == 12 and evaluation["images"] == 400


@pytest.mark.slow
def test_yolo_and_centernet_train_with_mixup_and_cutmix_boxes(tmp_path) -> None:
    import math

    from cnnlab.train.run import train_run

    for name in ("yolo_v1", "centernet"):
        out = tmp_path / name
        train_run(name, "digits-det", out=str(out), console=QUIET,
                  overrides=("epochs=1", "data.train_images=128", "augment=[{op: flip}, {op: cutmix, p: 0.5}, {op: mixup}]"))
        rows = list(csv.DictReader((out / "metrics.csv").open()))
        assert math.isfinite(float(rows[0]["train_loss"])) and math.isfinite(float(rows[0]["val_loss"]))


def test_input_size_and_pad_move_the_boxes_with_the_canvases() -> None:
    from cnnlab.data.placement import place
    from cnnlab.data.sources import ImageSet

    images = torch.zeros(2, 1, 96, 96, dtype=torch.uint8)
    images[0, 0, 10:40, 20:50] = 255
    targets = torch.tensor([[[4.0, 20, 10, 50, 40]], [[-1.0, -1, -1, -1, -1]]])
    placed = place(ImageSet(images, targets, tuple("0123456789")), 48, 2, stream=False)
    assert placed.images.shape == (2, 1, 52, 52)
    assert placed.labels[0, 0].tolist() == [4.0, 12, 7, 27, 22]  # halved, then 2 px of padding
    assert placed.labels[1, 0].tolist() == [-1.0] * 5
    ys, xs = torch.nonzero(placed.images[0, 0] > 127, as_tuple=True)
    assert (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) == (12, 7, 27, 22)
