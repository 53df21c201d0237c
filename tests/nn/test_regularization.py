"""Spatial dropout, DropBlock and stochastic depth: structure, scale and eval-mode identity."""

import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import CnnlabError
from cnnlab.nn import DropBlock2d, DropPath, SpatialDropout


def test_spatial_dropout_drops_whole_channels() -> None:
    torch.manual_seed(0)
    layer = SpatialDropout(0.5).train()
    x = torch.ones(64, 16, 5, 5)
    out = layer(x)
    per_channel = out.flatten(2)
    # Every channel is either all zero or all 1/(1-p): no partial channel survives.
    assert ((per_channel == 0).all(dim=2) | (per_channel == 2.0).all(dim=2)).all()
    assert (per_channel == 0).all(dim=2).float().mean().item() == pytest.approx(0.5, abs=0.05)
    assert out.mean().item() == pytest.approx(1.0, abs=0.1)  # expectation preserved
    assert torch.equal(layer.eval()(x), x)


def test_spatial_dropout_matches_dropout2d_semantics_in_3d() -> None:
    torch.manual_seed(1)
    out = SpatialDropout(0.3).train()(torch.ones(8, 4, 3, 3, 3))
    flat = out.flatten(2)
    assert ((flat == 0).all(dim=2) | (flat == flat[:, :, :1]).all(dim=2)).all()


def test_dropblock_drops_square_blocks_at_about_p() -> None:
    torch.manual_seed(0)
    p, block = 0.2, 3
    layer = DropBlock2d(p, block).train()
    x = torch.ones(32, 8, 24, 24)
    out = layer(x)
    dropped = (out == 0).float()
    assert dropped.mean().item() == pytest.approx(p, abs=0.04)
    # Each dropped pixel lies in a fully dropped block x block square: eroding the dropped set
    # with a block-sized window and dilating it back restores it exactly.
    eroded = 1 - F.max_pool2d(1 - dropped, block, stride=1)  # (H-b+1, W-b+1) anchors
    reopened = F.max_pool2d(F.pad(eroded, (block - 1, block - 1, block - 1, block - 1)), block, stride=1)
    assert torch.equal(reopened, dropped)
    kept = out[out != 0]
    # Kept units are rescaled by count / kept count, so the mean stays 1.
    assert out.mean().item() == pytest.approx(1.0, abs=1e-4)
    assert torch.allclose(kept, kept[0])


def test_dropblock_gamma_is_equation_one() -> None:
    layer = DropBlock2d(0.1, 7)
    # Ghiasi et al. 2018, Eq. 1 at feat_size 14: 0.1 / 49 * 196 / 64
    assert layer.gamma(14, 14) == pytest.approx(0.1 / 49 * 196 / 64)


def test_drop_path_drops_whole_samples() -> None:
    torch.manual_seed(0)
    layer = DropPath(0.25).train()
    out = layer(torch.ones(4000, 3, 4, 4))
    per_sample = out.flatten(1)
    zero = (per_sample == 0).all(dim=1)
    scaled = (per_sample == 1 / 0.75).all(dim=1)
    assert (zero | scaled).all()
    assert zero.float().mean().item() == pytest.approx(0.25, abs=0.025)
    x = torch.randn(2, 3)
    assert torch.equal(layer.eval()(x), x)


@pytest.mark.parametrize("cls", [SpatialDropout, DropPath, DropBlock2d])
def test_probability_is_checked(cls: type) -> None:
    with pytest.raises(CnnlabError, match="drop probability"):
        cls(1.0)
