"""Digit canvases: deterministic, every ink pixel labelled by its digit, nothing a threshold can solve."""

import torch

from cnnlab.data.segmentation import CLASSES, INK, digit_canvases
from cnnlab.data.sources import load


def test_one_digit_pasted_by_hand() -> None:
    digit = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    digit[0, 0, 1:3, 1:3] = torch.tensor([[200, 100], [255, 0]], dtype=torch.uint8)
    images, targets = digit_canvases(digit, torch.tensor([7]), count=3, size=6, per_canvas=(1, 1), seed=0)
    for image, target in zip(images, targets, strict=True):
        assert image.sum() == 555  # the digit pasted whole, somewhere
        assert sorted(target[image[0] >= INK].tolist()) == [8, 8] and target[image[0] < INK].eq(0).all()
    again = digit_canvases(digit, torch.tensor([7]), count=3, size=6, per_canvas=(1, 1), seed=0)
    assert torch.equal(again[0], images) and torch.equal(again[1], targets)


def test_the_brighter_paste_owns_an_overlap() -> None:
    bright = torch.full((1, 1, 3, 3), 250, dtype=torch.uint8)
    dim = torch.full((1, 1, 3, 3), 150, dtype=torch.uint8)
    digits, labels = torch.cat([bright, dim]), torch.tensor([1, 2])
    images, targets = digit_canvases(digits, labels, count=200, size=3, per_canvas=(2, 2), seed=1)
    # Same size as the canvas: every paste covers it all; any canvas holding the bright digit is class 2.
    has_bright = images.view(200, -1).amax(1) == 250
    assert has_bright.any() and (~has_bright).any()
    assert (targets[has_bright] == 2).all() and (targets[~has_bright] == 3).all()


def test_digits_seg_spec_has_eleven_classes_and_every_digit() -> None:
    splits = load("digits-seg")
    assert splits.train.classes == CLASSES and len(CLASSES) == 11
    assert splits.train.images.shape == (2000, 1, 32, 32) and splits.train.labels.shape == (2000, 32, 32)
    assert splits.test.images.shape == (400, 1, 32, 32)
    present = torch.bincount(splits.train.labels.flatten().long(), minlength=11)
    assert (present > 0).all()  # background and all ten digits
    assert torch.equal(load("digits-seg").test.labels, splits.test.labels)  # a fixed data set
