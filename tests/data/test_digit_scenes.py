"""Digit scenes for detection: boxes that hold their ink, never overlap past the bound, and repeat by seed."""

from __future__ import annotations

import torch

from cnnlab.data.detection import INK, digit_scenes, ink_box


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Return 10 stand-in digits (28x28): a bar whose place, width and brightness (130 + 12 k) name the class k."""
    images = torch.zeros(10, 1, 28, 28, dtype=torch.uint8)
    for label in range(10):
        images[label, 0, 4 + label: 14 + label, 6: 8 + 2 * label] = 130 + 12 * label
    return images, torch.arange(10)


def test_scenes_repeat_by_seed_and_hold_one_to_six_digits() -> None:
    digits, labels = _digits()
    a = digit_scenes(digits, labels, 40, seed=3)
    b = digit_scenes(digits, labels, 40, seed=3)
    c = digit_scenes(digits, labels, 40, seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[0], c[0])
    canvases, targets = a
    assert canvases.shape == (40, 1, 128, 128) and canvases.dtype == torch.uint8 and targets.shape == (40, 6, 5)
    real = (targets[..., 0] >= 0).sum(1)
    assert real.min() >= 1 and real.max() <= 6 and len(set(real.tolist())) >= 4
    # Padding rows sit after the real ones.
    assert all((targets[i, : int(n), 0] >= 0).all() and (targets[i, int(n):, 0] == -1).all() for i, n in enumerate(real))


def test_no_two_boxes_overlap_past_the_bound_and_boxes_stay_on_the_canvas() -> None:
    digits, labels = _digits()
    _, targets = digit_scenes(digits, labels, 60, seed=0)
    for scene in targets:
        boxes = scene[scene[:, 0] >= 0, 1:]
        assert (boxes >= 0).all() and (boxes <= 128).all()
        assert ((boxes[:, 2:] - boxes[:, :2]) >= 4).all()  # the bars are at least 10 px before scaling
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                w = (min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])).clamp(min=0)
                h = (min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])).clamp(min=0)
                inter = w * h
                union = (boxes[i, 2:] - boxes[i, :2]).prod() + (boxes[j, 2:] - boxes[j, :2]).prod() - inter
                assert inter / union <= 0.1 + 1e-6


def test_a_single_digits_box_is_its_ink_extent_plus_one_pixel() -> None:
    digits, labels = _digits()
    canvases, targets = digit_scenes(digits, labels, 30, per_canvas=(1, 1), seed=1)
    for canvas, target in zip(canvases, targets, strict=True):
        rows = torch.nonzero((canvas[0] >= INK).any(1)).squeeze(1)
        cols = torch.nonzero((canvas[0] >= INK).any(0)).squeeze(1)
        expected = torch.tensor([cols[0] - 1, rows[0] - 1, cols[-1] + 2, rows[-1] + 2]).float().clamp(0, 128)
        if (expected[2:] - expected[:2]).min() >= 4:
            assert torch.equal(target[0, 1:], expected)
        # The class is the digit's: the brightest pixel keeps the bar's own brightness.
        assert int(target[0, 0]) == (int(canvas.max()) - 130) / 12


def test_a_thin_box_is_widened_about_its_centre_and_an_empty_patch_has_none() -> None:
    patch = torch.zeros(10, 10, dtype=torch.uint8)
    patch[2:8, 5] = 200  # one column of ink
    assert ink_box(patch, 0, 0, 128).tolist() == [3.5, 1.0, 7.5, 9.0]  # x: [4, 7) centred at 5.5, widened to 4
    assert ink_box(torch.zeros(5, 5, dtype=torch.uint8), 0, 0, 128) is None
