"""Test-time views against hand computations."""

import pytest
import torch

from cnnlab.data.tta import TTA, Views, tta_views
from cnnlab.errors import CnnlabError
from cnnlab.runs.recipe import load_recipe


def test_tta_views_by_hand() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert len(tta_views(x, "none")) == 1 and len(tta_views(x, "flip")) == 2 and len(tta_views(x, "flip+shift")) == 4
    flip = tta_views(x, "flip")[1]
    assert torch.equal(flip[0, 0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))
    down_right, up_left = tta_views(x, "shift")[1:]
    assert down_right[0, 0, 1, 1] == x[0, 0, 0, 0] and up_left[0, 0, 0, 0] == x[0, 0, 1, 1]
    assert down_right[0, 0, 0, 0] == 0 and up_left[0, 0, 3, 3] == 0  # zero borders, as training translations


def test_ten_crops_are_torchvisions() -> None:
    import torchvision.transforms.v2.functional as TF

    x = torch.rand(2, 3, 32, 30)
    ours = Views(TTA.TEN_CROP, crop=28)(x)
    theirs = TF.ten_crop(x, [28, 28])
    assert len(ours) == 10 and all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    centre = Views(TTA.NONE, crop=28)(x)
    assert len(centre) == 1 and torch.equal(centre[0], TF.center_crop(x, [28, 28]))
    mirrored = Views(TTA.FLIP, crop=28)(x)
    assert torch.equal(mirrored[1], TF.center_crop(x, [28, 28]).flip(-1))


def test_multi_scale_resizes_the_whole_image() -> None:
    import torch.nn.functional as F

    x = torch.rand(2, 3, 32, 32)
    views = Views(TTA.MULTI_SCALE, scales=(28, 32, 40))(x)
    assert [tuple(v.shape[-2:]) for v in views] == [(28, 28), (32, 32), (40, 40)]
    assert views[1] is x
    assert torch.equal(views[0], F.interpolate(x, size=(28, 28), mode="bilinear", antialias=True))


def test_views_that_lack_their_sizes_get_one_line() -> None:
    with pytest.raises(CnnlabError, match="set evaluation.crop"):
        load_recipe("default", ["evaluation.tta=10crop"])
    with pytest.raises(CnnlabError, match="set evaluation.scales"):
        load_recipe("default", ["evaluation.tta=multiscale"])
    with pytest.raises(CnnlabError, match="evaluation.crop=40 is larger than the 32x32 test images"):
        Views(TTA.NONE, crop=40)(torch.rand(1, 3, 32, 32))
    assert load_recipe("default").digest() == load_recipe("default", ["evaluation.scales=[]"]).digest()
