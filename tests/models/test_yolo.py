"""YOLO v1: the S x S x (B*5 + C) tensor, the paper's loss by hand, its boxes and scores."""

import math

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.models import create_model, model_info
from cnnlab.models.yolo import YoloOutput, paired_iou


def _hand_loss(raw: torch.Tensor, targets: torch.Tensor, image: int, boxes: int = 2) -> float:
    """The paper's Eq. 3, one cell and one predictor at a time, in plain Python."""
    batch, side, _, _ = raw.shape
    cell = image / side  # the classes are the last depth - 5 * boxes values
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    owner = {}
    for b in range(batch):
        for row in targets[b].tolist():
            if row[0] < 0:
                continue
            cx, cy = (row[1] + row[3]) / 2, (row[2] + row[4]) / 2
            owner[(b, min(int(cy // cell), side - 1), min(int(cx // cell), side - 1))] = row  # the last row wins
    total = 0.0
    for b in range(batch):
        for i in range(side):
            for j in range(side):
                values = raw[b, i, j].tolist()
                predicted = []
                for k in range(boxes):
                    x, y, rw, rh, conf = (sig(v) for v in values[5 * k : 5 * k + 5])
                    cx, cy, w, h = (j + x) * cell, (i + y) * cell, rw * rw * image, rh * rh * image
                    predicted.append(((x, y, rw, rh, conf), (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)))
                truth = owner.get((b, i, j))
                responsible = None
                if truth is not None:
                    ious = [float(paired_iou(torch.tensor(box, dtype=torch.float64), torch.tensor(truth[1:], dtype=torch.float64)))
                            for _, box in predicted]
                    responsible = max(range(boxes), key=lambda k: (ious[k], -k))
                    (x, y, rw, rh, conf), _ = predicted[responsible]
                    cx, cy = (truth[1] + truth[3]) / 2, (truth[2] + truth[4]) / 2
                    total += 5 * ((x - (cx / cell - j)) ** 2 + (y - (cy / cell - i)) ** 2)
                    total += 5 * ((rw - math.sqrt((truth[3] - truth[1]) / image)) ** 2
                                  + (rh - math.sqrt((truth[4] - truth[2]) / image)) ** 2)
                    total += (conf - ious[responsible]) ** 2
                    logits = values[5 * boxes :]
                    norm = sum(math.exp(v) for v in logits)
                    total += sum((math.exp(v) / norm - (c == int(truth[0]))) ** 2 for c, v in enumerate(logits))
                for k in range(boxes):
                    if k != responsible:
                        total += 0.5 * predicted[k][0][4] ** 2
    return total / batch


def test_the_output_is_s_by_s_by_b5_plus_c_on_a_stride_16_stage() -> None:
    model = create_model("yolo_v1", num_classes=10, in_chans=1)
    output = model(torch.randn(2, 1, 128, 128))
    assert tuple(output.raw.shape) == (2, 8, 8, 2 * 5 + 10)
    boxes, scores = output.candidates()
    assert tuple(boxes.shape) == (2, 8 * 8 * 2, 4) and tuple(scores.shape) == (2, 128, 10)
    assert model_info("yolo_v1").detector and not model_info("yolo_v1").classifier


def test_the_loss_is_the_papers_equation_3_by_hand() -> None:
    torch.manual_seed(0)
    raw = torch.randn(2, 4, 4, 2 * 5 + 3, dtype=torch.float64)
    targets = torch.tensor([
        [[0, 3.0, 5.0, 30.0, 40.0], [2, 40.0, 40.0, 60.0, 63.0], [1, 8.0, 9.0, 20.0, 25.0]],  # rows 0 and 2 share a cell
        [[1, 10.0, 44.0, 22.0, 60.0], [-1, -1, -1, -1, -1], [-1, -1, -1, -1, -1]],
    ], dtype=torch.float64)
    got = YoloOutput(raw, 2, (64, 64), 5.0, 0.5).loss(targets)
    assert float(got) == pytest.approx(_hand_loss(raw, targets, 64), rel=1e-10)


def test_mixups_weights_scale_each_objects_terms_and_ones_change_nothing() -> None:
    """The loss is affine in an object's weight: its own terms scale, the no-object term stays (it is still that cell's)."""
    torch.manual_seed(0)
    raw = torch.randn(1, 4, 4, 2 * 5 + 3, dtype=torch.float64)
    rows = torch.tensor([[[0, 3.0, 5.0, 30.0, 40.0, 1035.0, 1.0], [2, 40.0, 40.0, 60.0, 63.0, 460.0, 1.0]]],
                        dtype=torch.float64)
    output = YoloOutput(raw, 2, (64, 64), 5.0, 0.5)
    assert float(output.loss(rows)) == pytest.approx(float(output.loss(rows[..., :5])), rel=1e-12)

    def weighted(w: float) -> float:
        changed = rows.clone()
        changed[0, 1, 6] = w
        return float(output.loss(changed))

    assert weighted(0.5) == pytest.approx((weighted(0.0) + weighted(1.0)) / 2, rel=1e-12)
    assert weighted(0.0) != pytest.approx(weighted(1.0))


def test_of_two_objects_in_one_cell_the_heavier_is_kept() -> None:
    """MixUp may put a barely visible partner object in the cell of one that shows: the one that shows is learned."""
    raw = torch.randn(1, 4, 4, 2 * 5 + 3, dtype=torch.float64)
    output = YoloOutput(raw, 2, (64, 64), 5.0, 0.5)
    rows = torch.tensor([[[0, 2.0, 2.0, 14.0, 14.0, 144.0, 0.99], [1, 3.0, 3.0, 13.0, 13.0, 100.0, 0.01]]],
                        dtype=torch.float64)
    assert output._assign(rows)[-1].tolist() == [[True, False]]
    assert output._assign(rows[..., :5])[-1].tolist() == [[False, True]]  # unweighted: the last row, as before


def test_only_the_responsible_predictor_learns_coordinates() -> None:
    raw = torch.zeros(1, 2, 2, 2 * 5 + 2, requires_grad=True)
    with torch.no_grad():  # predictor 1 of cell (0, 0) is the box itself, predictor 0 a far smaller one
        raw[0, 0, 0, 2:4] = -3.0
        raw[0, 0, 0, 7:9] = math.log(math.sqrt(0.5) / (1 - math.sqrt(0.5)))  # sqrt w = sqrt(0.5): half the image
        raw[0, 0, 0, 5] = 0.3  # its centre a little off, so it has something to learn
    targets = torch.tensor([[[1, 0.0, 0.0, 16.0, 16.0]]])  # centre (8, 8) in cell (0, 0) of a 32-px image
    YoloOutput(raw, 2, (32, 32), 5.0, 0.5).loss(targets).backward()
    assert raw.grad[0, 0, 0, 0:4].abs().sum() == 0  # predictor 0: only its confidence is pushed down
    assert raw.grad[0, 0, 0, 5:9].abs().sum() > 0


def test_boxes_and_class_scores_decode_as_the_paper_says() -> None:
    raw = torch.zeros(1, 2, 2, 1 * 5 + 2)
    raw[0, 1, 0, 4] = 10.0  # confident predictor in row 1, column 0
    raw[0, 1, 0, 5:] = torch.tensor([0.0, math.log(3.0)])  # P(class 1) = 3/4
    boxes, scores = YoloOutput(raw, 1, (64, 64), 5.0, 0.5).candidates()
    # x = y = sigmoid(0) = 0.5: the centre of cell (1, 0) is (16, 48); sqrt w = 0.5: w = 0.25 * 64 = 16.
    assert boxes[0, 2].tolist() == pytest.approx([8.0, 40.0, 24.0, 56.0])
    assert scores[0, 2].tolist() == pytest.approx([torch.sigmoid(torch.tensor(10.0)).item() * p for p in (0.25, 0.75)])


def test_a_backbone_without_that_stride_is_one_line() -> None:
    with pytest.raises(CnnlabError, match="no stage of stride 64"):
        create_model("yolo_v1", num_classes=3, in_chans=1, stride=64)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["yolo_v1", "centernet"])
def test_a_detectors_loss_and_hits_make_no_host_sync(name: str) -> None:
    model = create_model(name, num_classes=10, in_chans=1).cuda()
    targets = torch.full((4, 6, 5), -1.0, device="cuda")
    targets[0, 0] = torch.tensor([3.0, 10, 10, 40, 50], device="cuda")
    targets[2, :2] = torch.tensor([[1.0, 60, 60, 90, 100], [7.0, 0, 0, 20, 30]], device="cuda")
    x = torch.randn(4, 1, 128, 128, device="cuda")
    output = model(x)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        output.loss(targets).backward()
        output.hits(targets)
    finally:
        torch.cuda.set_sync_debug_mode("default")
