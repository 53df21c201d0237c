"""CenterNet: Gaussian targets, the focal and L1 losses by hand, peaks as candidates."""

import math

import pytest
import torch

from cnnlab.models import create_model, model_info
from cnnlab.models.centernet import CenterNetOutput


def _hand_loss(heat, size, offset, targets) -> float:
    """The paper's Eq. 1-3 with TTFNet's Gaussian, one pixel and one object at a time."""
    batch, classes, height, width = heat.shape
    wanted = [[[[0.0] * width for _ in range(height)] for _ in range(classes)] for _ in range(batch)]
    objects = []
    for b in range(batch):
        for c, x1, y1, x2, y2 in targets[b].tolist():
            if c < 0:
                continue
            cx, cy = (x1 + x2) / 8, (y1 + y2) / 8
            w, h = (x2 - x1) / 4, (y2 - y1) / 4
            px, py = int(cx), int(cy)
            objects.append((b, px, py, cx, cy, w, h))
            sx, sy = 0.54 * w / 6, 0.54 * h / 6
            for y in range(height):
                for x in range(width):
                    value = math.exp(-((x - px) ** 2 / (2 * sx * sx) + (y - py) ** 2 / (2 * sy * sy)))
                    wanted[b][int(c)][y][x] = max(wanted[b][int(c)][y][x], value)
    focal = 0.0
    for b in range(batch):
        for c in range(classes):
            for y in range(height):
                for x in range(width):
                    p = 1 / (1 + math.exp(-float(heat[b, c, y, x])))
                    t = wanted[b][c][y][x]
                    focal += (1 - p) ** 2 * math.log(p) if t == 1 else (1 - t) ** 4 * p ** 2 * math.log(1 - p)
    n = len(objects)
    l1_size = sum(abs(float(size[b, 0, py, px]) - w) + abs(float(size[b, 1, py, px]) - h) for b, px, py, _, _, w, h in objects)
    l1_off = sum(abs(float(offset[b, 0, py, px]) - (cx - px)) + abs(float(offset[b, 1, py, px]) - (cy - py))
                 for b, px, py, cx, cy, _, _ in objects)
    return -focal / n + 0.1 * l1_size / n + l1_off / n


def test_the_loss_is_the_papers_by_hand() -> None:
    torch.manual_seed(0)
    heat, size, offset = torch.randn(2, 3, 8, 8, dtype=torch.float64), torch.randn(2, 2, 8, 8, dtype=torch.float64), \
        torch.randn(2, 2, 8, 8, dtype=torch.float64)
    targets = torch.tensor([
        [[0, 3.0, 5.0, 17.0, 21.0], [2, 14.0, 10.0, 30.0, 31.0]],
        [[1, 0.0, 2.0, 9.0, 12.0], [-1, -1, -1, -1, -1]],
    ], dtype=torch.float64)
    got = CenterNetOutput(heat, size, offset, (32, 32)).loss(targets)
    assert float(got) == pytest.approx(_hand_loss(heat, size, offset, targets), rel=1e-9)


def test_mixups_weights_count_each_object_by_its_share() -> None:
    """Weights of one change nothing; weights w scale an object's focal peak, size and offset terms, normalised by their sum."""
    torch.manual_seed(0)
    heat, size, offset = (torch.randn(1, c, 8, 8, dtype=torch.float64) for c in (3, 2, 2))
    rows = torch.tensor([[[0, 3.0, 5.0, 17.0, 21.0, 224.0, 1.0], [2, 14.0, 10.0, 30.0, 31.0, 336.0, 1.0]]],
                        dtype=torch.float64)
    output = CenterNetOutput(heat, size, offset, (32, 32))
    assert float(output.loss(rows)) == pytest.approx(float(output.loss(rows[..., :5])), rel=1e-12)
    half = rows.clone()
    half[..., 6] = 0.5  # both at one half: every positive term halves, and so does the count they are divided by
    positive_and_boxes = float(output.loss(rows)) - _negative(output, rows) / 2
    assert float(output.loss(half)) == pytest.approx(positive_and_boxes + _negative(output, rows), rel=1e-9)


def _negative(output: CenterNetOutput, rows: torch.Tensor) -> float:
    """Return the focal loss's negative sum (over the pixels off the peaks), undivided."""
    wanted = output.heat_target(rows)
    p = output.heat.sigmoid()
    terms = (1 - wanted).pow(4) * p.pow(2) * torch.nn.functional.logsigmoid(-output.heat)
    return float(-terms.masked_fill(wanted == 1, 0.0).sum())


def test_the_target_peaks_at_one_at_each_centre_and_overlaps_keep_the_larger() -> None:
    heat = torch.zeros(1, 2, 16, 16)
    targets = torch.tensor([[[1, 8.0, 8.0, 40.0, 40.0], [1, 20.0, 8.0, 52.0, 40.0], [0, 0.0, 0.0, 8.0, 8.0]]])
    wanted = CenterNetOutput(heat, heat[:, :2], heat[:, :2], (64, 64)).heat_target(targets)
    assert wanted[0, 1, 6, 6] == 1 and wanted[0, 1, 6, 9] == 1 and wanted[0, 0, 1, 1] == 1
    assert int((wanted == 1).sum()) == 3 and wanted.max() == 1
    between = wanted[0, 1, 6, 7]
    sigma = 0.54 * 8 / 6
    assert float(between) == pytest.approx(max(math.exp(-1 / (2 * sigma**2)), math.exp(-4 / (2 * sigma**2))))


def test_candidates_are_the_3x3_peaks_with_their_boxes() -> None:
    heat = torch.full((1, 1, 8, 8), -10.0)
    heat[0, 0, 2, 3], heat[0, 0, 2, 4] = 3.0, 1.0  # (2, 4) is beside a stronger peak: suppressed
    size, offset = torch.zeros(1, 2, 8, 8), torch.zeros(1, 2, 8, 8)
    size[0, :, 2, 3] = torch.tensor([4.0, 2.0])
    offset[0, :, 2, 3] = torch.tensor([0.5, 0.25])
    boxes, scores = CenterNetOutput(heat, size, offset, (32, 32)).candidates()
    assert scores[0, 2 * 8 + 4, 0] == 0 and scores[0, 2 * 8 + 3, 0] == pytest.approx(torch.sigmoid(torch.tensor(3.0)).item())
    # centre (3.5, 2.25) cells, 4 x 2 cells, times the stride 4.
    assert boxes[0, 2 * 8 + 3].tolist() == pytest.approx([6.0, 5.0, 22.0, 13.0])


def test_centernet_is_a_zoo_detector_at_stride_4() -> None:
    model = create_model("centernet", num_classes=10, in_chans=1)
    output = model(torch.randn(2, 1, 128, 128))
    assert tuple(output.heat.shape) == (2, 10, 32, 32) and model_info("centernet").detector
    assert torch.sigmoid(output.heat).mean().item() == pytest.approx(0.1, abs=0.02)  # the prior the bias sets
