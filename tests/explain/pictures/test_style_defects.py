"""Style transfer on what users give it: images read from files (permuted views), grey runs, and weights that make no image."""

from __future__ import annotations

import math

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.explain.kit.pixels import PixelModel
from cnnlab.explain.pictures.style import RandomFeatures, style_transfer
from cnnlab.models import create_model
from tests.explain.support import unchanged


def _file_like(side: int, seed: int) -> torch.Tensor:
    """Return an RGB image (3, H, W) in [0, 1] laid out as read_image returns it: an (H, W, C) buffer permuted."""
    pixels = torch.rand(side, side, 3, generator=torch.Generator().manual_seed(seed))
    return pixels.permute(2, 0, 1)


def test_lbfgs_lowers_the_total_loss_on_images_read_from_files() -> None:
    content, style = _file_like(12, 0), _file_like(12, 1)
    assert not content.is_contiguous()  # as the CLI hands them over: this crashed L-BFGS's flat .view of the gradient
    model = RandomFeatures(sizes=(3, 5), width=8)
    with unchanged(model):
        result = style_transfer(model, content, style, steps=4, optimiser="lbfgs", style_weight=10.0)
    first = result.history[0][2] + 10.0 * result.history[0][1]
    assert result.content_end + 10.0 * result.style_end < 0.9 * first
    assert result.image.shape == (3, 12, 12) and torch.isfinite(result.image).all()


def test_a_grey_run_styles_rgb_images_and_keeps_the_content_colours() -> None:
    run = create_model("small_cnn", num_classes=10, in_chans=1, width=8)
    model = PixelModel(run, (0.3,), (0.4,))  # as `--features RUN` wraps a digits run
    content, style = _file_like(16, 2), _file_like(16, 3)
    with unchanged(model):
        result = style_transfer(model, content, style, steps=8, style_weight=10.0)
    assert result.image.shape == content.shape  # RGB in, RGB out, beside its inputs
    assert result.style_end < result.style_start
    # Only the luma is optimised: the colour differences between channels stay the content's (up to the [0, 1] clamp).
    inside = (result.image > 0.02).all(0) & (result.image < 0.98).all(0)
    assert torch.allclose((result.image[0] - result.image[1])[inside], (content[0] - content[1])[inside], atol=1e-5)


def test_an_rgb_extractor_styles_grey_images() -> None:
    content, style = _file_like(12, 4)[:1], _file_like(12, 5)[:1]
    result = style_transfer(RandomFeatures(sizes=(3,), width=8), content, style, steps=5)
    assert result.image.shape == (1, 12, 12) and result.style_end < result.style_start


@pytest.mark.parametrize("weight", [math.nan, math.inf, -1.0])
def test_weights_that_make_no_image_are_refused(weight: float) -> None:
    content, style = _file_like(8, 6), _file_like(8, 7)
    with pytest.raises(CnnlabError, match="style weight .*--style-weight"):
        style_transfer(RandomFeatures(sizes=(3,), width=4), content, style, style_weight=weight, steps=1)


def test_a_loss_that_overflows_names_the_weights_instead_of_writing_nan() -> None:
    content, style = _file_like(8, 6), _file_like(8, 7)
    with pytest.raises(CnnlabError, match=r"loss became inf .*style weight 1e\+308.*lower the style weight"):
        style_transfer(RandomFeatures(sizes=(3,), width=4), content, style, style_weight=1e308, steps=2)


def test_sizes_too_small_for_the_extractor_are_one_line_errors() -> None:
    with pytest.raises(CnnlabError, match="at least 2x2"):
        style_transfer(RandomFeatures(sizes=(3,), width=4), torch.rand(3, 1, 1), torch.rand(3, 1, 1), steps=1)
    # Reflect padding of a 15-pixel filter needs more than 7 pixels a side: the extractor's limit, said as such.
    with pytest.raises(CnnlabError, match="cannot run on 6x6 images.*--size"):
        style_transfer(RandomFeatures(sizes=(15,), width=4), torch.rand(3, 6, 6), torch.rand(3, 6, 6), steps=1)
    with pytest.raises(CnnlabError, match="at least 1"):
        style_transfer(RandomFeatures(sizes=(3,), width=4), torch.rand(3, 4, 4), torch.rand(3, 4, 4), steps=0)
