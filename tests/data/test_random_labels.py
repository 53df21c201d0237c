"""data.random_labels: a seeded permutation of the training labels (the data-randomisation test's model)."""

import pytest
import torch

from cnnlab.data.sources import ImageSet, shuffle_labels
from cnnlab.errors import CnnlabError


def test_shuffle_keeps_images_and_label_counts_and_repeats() -> None:
    labels = torch.arange(100) % 10
    data = ImageSet(torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1), labels, tuple("abcdefghij"))
    shuffled = shuffle_labels(data, seed=3)
    assert torch.equal(shuffled.images, data.images)
    assert torch.equal(shuffled.labels.bincount(), labels.bincount())
    assert (shuffled.labels != labels).float().mean() > 0.7  # most labels move
    assert torch.equal(shuffle_labels(data, seed=3).labels, shuffled.labels)
    assert not torch.equal(shuffle_labels(data, seed=4).labels, shuffled.labels)


def test_segmentation_targets_are_refused() -> None:
    masks = ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, 4, 4, dtype=torch.uint8), ("a", "b"))
    with pytest.raises(CnnlabError, match="random_labels"):
        shuffle_labels(masks, seed=0)
