"""Exemplars: the running top-k equals a brute-force ranking, crops are the analytic fields, the deconvnet projects one unit."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.explain.kit.hooks import forward_to
from cnnlab.explain.pictures.exemplars import batches_of, crop, deconv_projection, top_exemplars
from cnnlab.inspect.receptive import layer_receptive_field
from tests.explain.support import unchanged


def _net() -> nn.Module:
    torch.manual_seed(0)
    # conv 5x5 pad 2 -> ReLU -> max-pool 2 -> conv 3x3 stride 2 pad 1 -> ReLU: by hand, field 5, then 6, then 6 + 2 * 2 = 10
    return nn.Sequential(nn.Conv2d(3, 4, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3)).train()


def test_running_top_k_matches_brute_force_and_crops_are_the_fields() -> None:
    model = _net()
    images = torch.rand(37, 3, 16, 16)
    with unchanged(model):
        found = top_exemplars(model, batches_of(images, 8), "4", [0, 2, 5], k=4)
        with torch.no_grad():
            act = forward_to(model.eval(), ["4"], images)["4"]  # (N, 6, 4, 4)
        model.train()
    for channel, best in found.items():
        peak = act[:, channel].flatten(1).max(1).values
        assert [e.index for e in best] == peak.topk(4).indices.tolist()
        assert torch.allclose(torch.tensor([e.score for e in best]), peak.topk(4).values)
    # By hand: unit (r, c) of layer 4 has jump 4 and centre 4r + 0.5 (start 1 - 0.5 of the pool, minus ... ), field 10.
    row = layer_receptive_field(model, "4", (3, 16, 16))
    assert row.receptive_field == (10, 10) and row.jump == (4, 4)
    exemplar = found[2][0]
    (top, bottom), (left, right) = exemplar.window
    r, c = exemplar.position
    assert bottom - top + 1 == 10 and right - left + 1 == 10
    assert (top + bottom) / 2 == row.start[0] + 4 * r and (left + right) / 2 == row.start[1] + 4 * c
    piece = crop(images[exemplar.index], exemplar.window, fill=-1.0)
    image = images[exemplar.index]
    inside = (slice(max(top, 0), min(bottom, 15) + 1), slice(max(left, 0), min(right, 15) + 1))
    assert torch.equal(piece[:, inside[0].start - top:inside[0].stop - top, inside[1].start - left:inside[1].stop - left],
                       image[:, inside[0], inside[1]])
    assert (piece == -1).sum() == 3 * (100 - (inside[0].stop - inside[0].start) * (inside[1].stop - inside[1].start))


def test_the_field_by_hand_on_one_conv() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, stride=2))
    row = layer_receptive_field(model, "1", (1, 9, 9))
    # unit 1 of the second conv reads first-conv units 2..4, which read pixels 1..5.
    assert row.receptive_field == (5, 5)
    image = torch.arange(81.0).view(1, 9, 9)
    from cnnlab.inspect.receptive import receptive_window

    window = receptive_window(row, (1, 2))
    assert window == ((1, 5), (3, 7))
    assert torch.equal(crop(image, window), image[:, 1:6, 3:8])


def test_deconv_projection_stays_inside_the_field_and_leaves_the_model() -> None:
    model = _net()
    image = torch.rand(1, 3, 16, 16)
    with unchanged(model):
        projection = deconv_projection(model, image, "4", 1, (1, 2))
    assert projection.shape == (3, 16, 16) and projection.abs().sum() > 0
    row = layer_receptive_field(model, "4", (3, 16, 16))
    from cnnlab.inspect.receptive import receptive_window

    (top, bottom), (left, right) = receptive_window(row, (1, 2))
    outside = projection.abs().clone()
    outside[:, max(top, 0):bottom + 1, max(left, 0):right + 1] = 0
    assert outside.sum() == 0  # nothing beyond the unit's analytic field


def test_bad_channel_or_position_is_one_line() -> None:
    import pytest

    from cnnlab.errors import CnnlabError

    model = _net()
    with pytest.raises(CnnlabError, match="choose a channel and position inside it"):
        deconv_projection(model, torch.rand(3, 16, 16), "4", 9, (0, 0))
    with pytest.raises(CnnlabError, match="choose channels in that range"):
        top_exemplars(model, batches_of(torch.rand(4, 3, 16, 16), 2), "4", [6])
