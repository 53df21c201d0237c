"""Images: both image sets honour one protocol, and resident() replaces probing for an attribute."""

import torch

from cnnlab.data.collection import Images
from cnnlab.data.loader import StreamedImages
from cnnlab.data.sources import ImageSet


def test_both_image_sets_are_images() -> None:
    images = torch.randint(0, 256, (6, 1, 4, 4), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    held = ImageSet(images, labels, ("a", "b"))
    streamed = StreamedImages(images, labels, ("a", "b"), channels=1, workers=0)
    for data in (held, streamed):
        assert isinstance(data, Images) and len(data) == 6 and data.skipped == 0
        batches = list(data.batches([torch.tensor([0, 2]), torch.tensor([5])], torch.device("cpu")))
        assert torch.equal(batches[0][0], images[[0, 2]]) and torch.equal(batches[1][1], labels[[5]])
        assert isinstance(data.subset(torch.tensor([1, 3])), Images)
    assert held.resident() is images and streamed.resident() is None
