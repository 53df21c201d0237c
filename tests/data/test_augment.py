"""Augmentation ops against hand computations: flip, translate, cutout, and the recipe's op list."""

import pytest
import torch
from torch import nn

from cnnlab.data.augment import Cutout, Flip, Translate, augment_batch
from cnnlab.errors import CnnlabError


def test_flip_translate_cutout_by_hand() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    flipped = augment_batch(x, (Flip(),), g)
    is_flipped = (flipped == x.flip(3)).flatten(1).all(1)
    assert ((flipped == x).flatten(1).all(1) | is_flipped).all() and 10 < is_flipped.sum() < 54
    assert torch.equal(augment_batch(x, (Flip(p=1.0),), g), x.flip(3)) and torch.equal(augment_batch(x, (Flip(p=0.0),), g), x)
    shifted = augment_batch(x, (Translate(1),), g)
    # Every crop is the input shifted by at most one pixel with zeros coming in.
    assert all(any(torch.equal(s[0], torch.roll(nn.functional.pad(x[0, 0], (1, 1, 1, 1)), (dy, dx), (0, 1))[1:5, 1:5])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)) for s in shifted)
    cut = augment_batch(torch.ones(8, 1, 9, 9), (Cutout(3),), g)
    assert ((cut == 0).flatten(1).sum(1) <= 9).all() and (cut == 0).any()


def test_ops_apply_in_order_and_draw_one_stream() -> None:
    x = torch.randn(16, 3, 8, 8)
    ops = (Flip(), Translate(2), Cutout(3))
    a = augment_batch(x, ops, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    b = Cutout(3)(Translate(2)(Flip()(x, g), g), g)
    assert torch.equal(a, b)


@pytest.mark.parametrize("make, message", [
    (lambda: Flip(p=1.5), "flip p=1.5 must lie in"),
    (lambda: Translate(-3), "translate padding=-3 must be >= 0"),
    (lambda: Cutout(-3), "cutout size=-3 must be >= 1"),
])
def test_bad_parameters_are_one_line_errors(make, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        make()
