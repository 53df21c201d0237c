"""Test-time views against hand computations."""

import torch

from cnnlab.data.tta import tta_views


def test_tta_views_by_hand() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert len(tta_views(x, "none")) == 1 and len(tta_views(x, "flip")) == 2 and len(tta_views(x, "flip+shift")) == 4
    flip = tta_views(x, "flip")[1]
    assert torch.equal(flip[0, 0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))
    down_right, up_left = tta_views(x, "shift")[1:]
    assert down_right[0, 0, 1, 1] == x[0, 0, 0, 0] and up_left[0, 0, 0, 0] == x[0, 0, 1, 1]
    assert down_right[0, 0, 0, 0] == 0 and up_left[0, 0, 3, 3] == 0  # zero borders, as training translations
