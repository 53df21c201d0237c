"""Data-spec modifiers (SPEC@CLASSES, SPEC@permuted), the class-balanced labelled draw and soft targets."""

import pytest
import torch

from cnnlab.data.placement import place
from cnnlab.data.sources import (
    DataSplits,
    ImageSet,
    apply_modifiers,
    labelled_split,
    load,
    permute_pixels,
    split_spec,
)
from cnnlab.errors import CnnlabError

CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _set(classes: tuple[str, ...], n: int = 200, side: int = 4) -> ImageSet:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, side, side), dtype=torch.uint8, generator=generator)
    return ImageSet(images, torch.arange(n) % len(classes), classes)


def test_split_spec() -> None:
    assert split_spec("mnist") == ("mnist", ())
    assert split_spec("mnist@0-4@permuted") == ("mnist", ("0-4", "permuted"))
    assert split_spec("cifar10@vehicles") == ("cifar10", ("vehicles",))


def test_class_range_relabels_in_order() -> None:
    data = _set(tuple("0123456789"))
    kept = apply_modifiers("mnist", DataSplits(data, data), ("5-9",)).train
    assert kept.classes == tuple("56789")
    assert len(kept) == 100
    # Image i had label i % 10; those of 5..9 are kept and become 0..4.
    original = (data.labels >= 5).nonzero().flatten()
    assert torch.equal(kept.images, data.images[original])
    assert torch.equal(kept.labels, data.labels[original] - 5)


def test_group_and_list_and_order() -> None:
    data = _set(CIFAR)
    vehicles = apply_modifiers("cifar10", DataSplits(data, data), ("vehicles",)).test
    assert vehicles.classes == ("airplane", "automobile", "ship", "truck")
    assert set(vehicles.labels.tolist()) == {0, 1, 2, 3}
    listed = apply_modifiers("cifar10", DataSplits(data, data), ("truck,cat",)).train
    assert listed.classes == ("truck", "cat")
    assert torch.equal(listed.labels, (data.labels[(data.labels == 9) | (data.labels == 3)] == 3).long())


@pytest.mark.parametrize("modifier", ["zebra", "cat,cat", "airplane-zebra"])
def test_unknown_classes_are_one_line(modifier: str) -> None:
    data = _set(CIFAR)
    with pytest.raises(CnnlabError, match="not a class|repeated") as error:
        apply_modifiers("cifar10", DataSplits(data, data), (modifier,))
    assert "\n" not in str(error.value) and "groups: animals, vehicles" in str(error.value)


def test_permutation_is_fixed_and_shared() -> None:
    data = _set(tuple("01"), n=6, side=5)
    first, second = permute_pixels(data), permute_pixels(data)
    assert torch.equal(first.images, second.images)  # one order for every call: train and test agree
    assert not torch.equal(first.images, data.images)
    # A permutation: every image keeps its multiset of pixel values, and the same position moves alike.
    assert torch.equal(first.images.flatten(1).sort().values, data.images.flatten(1).sort().values)
    flat, moved = data.images.flatten(2), first.images.flatten(2)
    index = torch.randperm(25, generator=torch.Generator().manual_seed(20140101))
    assert torch.equal(moved, flat[:, :, index])


def test_digits_spec_end_to_end() -> None:
    splits = load("digits@0-4@permuted")
    assert splits.train.classes == tuple("01234")
    assert int(splits.test.labels.max()) == 4
    plain = load("digits@0-4")
    assert torch.equal(permute_pixels(plain.test).images, splits.test.images)


def test_labelled_split_is_class_balanced_and_seeded() -> None:
    data = _set(tuple("0123456789"), n=1000)
    labelled, unlabelled = labelled_split(data, 0.05, seed=3)
    assert len(labelled) == 50 and len(unlabelled) == 950
    assert torch.bincount(data.labels[labelled], minlength=10).tolist() == [5] * 10
    assert set(labelled.tolist()).isdisjoint(unlabelled.tolist())
    assert torch.equal(labelled, labelled_split(data, 0.05, seed=3)[0])
    assert not torch.equal(labelled, labelled_split(data, 0.05, seed=4)[0])
    tiny, _ = labelled_split(data, 0.0001, seed=0)
    assert torch.bincount(data.labels[tiny], minlength=10).tolist() == [1] * 10  # at least one a class


def test_soft_targets_travel_with_their_images() -> None:
    data = _set(tuple("012"), n=9)
    soft = torch.rand(9, 3).softmax(1)
    held = ImageSet(data.images, soft.argmax(1), data.classes, soft=soft)
    sub = held.subset(torch.tensor([4, 1]))
    assert torch.equal(sub.soft, soft[[4, 1]])
    placed = place(held, None, 2, stream=False)
    assert torch.equal(placed.soft, soft) and placed.images.shape[-1] == 8
    (images, targets), = held.batches([torch.tensor([2, 0])], torch.device("cpu"))
    assert torch.equal(targets, soft[[2, 0]])
    with pytest.raises(CnnlabError, match="one probability row"):
        ImageSet(data.images, data.labels, data.classes, soft=torch.rand(9, 4))
    with pytest.raises(CnnlabError, match="runtime.stream=false"):
        place(held, None, 0, stream=True)
