"""Data sources: the bundled digits and the seeded split."""

import pytest
import torch

from cnnlab.data.sources import load, load_digits, split
from cnnlab.errors import CnnlabError


def test_digits_shape_range_and_classes() -> None:
    data = load_digits()
    assert data.images.shape == (1797, 1, 8, 8) and data.images.dtype == torch.uint8
    assert data.images.max().item() == 255 and data.images.min().item() == 0  # 16 -> 255
    assert data.labels.bincount().tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert data.classes == tuple("0123456789")


def test_split_is_deterministic_and_disjoint() -> None:
    data = load_digits()
    train_a, test_a = split(data, 0.2, seed=3)
    train_b, test_b = split(data, 0.2, seed=3)
    assert torch.equal(test_a.labels, test_b.labels) and torch.equal(train_a.images, train_b.images)
    assert len(test_a) == 359 and len(train_a) + len(test_a) == 1797
    # Disjoint: every image lands in exactly one part (order of the seeded permutation).
    order = torch.randperm(1797, generator=torch.Generator().manual_seed(3))
    assert torch.equal(torch.cat([test_a.labels, train_a.labels]), data.labels[order])
    _, test_c = split(data, 0.2, seed=4)
    assert not torch.equal(test_a.images, test_c.images)


def test_unknown_spec_and_bad_fraction() -> None:
    with pytest.raises(CnnlabError, match="unknown data spec"):
        load("imagenet")
    with pytest.raises(CnnlabError, match="fraction"):
        split(load_digits(), 1.5, seed=0)
