"""Filter and feature-map grids: the tiles are the kernels and the strongest channels."""

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.explain import verify_no_hooks
from cnnlab.explain.pictures.filters import feature_grid, filter_grid, through_kernels, tile


def test_tile_layout() -> None:
    tiles = torch.rand(5, 1, 3, 3)
    grid = tile(tiles, columns=3, pad=1)
    assert grid.shape == (1, 2 * 4 + 1, 3 * 4 + 1)
    torch.testing.assert_close(grid[:, 5:8, 1:4], tiles[3])  # row 1, column 0


def test_first_layer_filters_are_the_kernels_scaled_alone() -> None:
    conv = nn.Conv2d(3, 4, 3)
    model = nn.Sequential(conv, nn.ReLU())
    grid = filter_grid(model, "0")
    weight = conv.weight.detach()
    first = (weight[0] - weight[0].min()) / (weight[0].max() - weight[0].min())
    torch.testing.assert_close(grid[:, 1:4, 1:4], first)
    deep = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 2, 3))
    assert filter_grid(deep, "1").shape == (1, 2 * 4 + 1, 8 * 4 + 1)  # a row of 8 input channels per filter
    with pytest.raises(CnnlabError, match="not a convolution"):
        filter_grid(model, "1")


def test_feature_grid_orders_channels_by_strength() -> None:
    conv = nn.Conv2d(1, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 3.0, 2.0]).view(3, 1, 1, 1))
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    x = torch.rand(1, 1, 4, 4) + 0.1
    model(x)  # materialise the lazy layer
    model.train()
    grid, order = feature_grid(model, x, "1", top=3)
    assert order == [1, 2, 0] and grid.shape[0] == 1
    assert model.training
    verify_no_hooks(model)


def test_through_kernels_shows_every_response() -> None:
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    grid, names = through_kernels(image)
    assert names[0] == "image" and "gabor3" in names and len(names) == 12
    assert grid.min() >= 0 and grid.max() <= 1

    def unit(t: torch.Tensor) -> torch.Tensor:
        return (t - t.min()) / (t.max() - t.min())

    # Tile k sits at row k // 8, column k % 8 of 18-pixel cells (16 + 1 of padding), each scaled alone.
    def cell(k: int) -> torch.Tensor:
        top, left = 1 + (k // 8) * 17, 1 + (k % 8) * 17
        return grid[0, top:top + 16, left:left + 16]

    grey = image.mean(0)
    torch.testing.assert_close(cell(0), unit(grey))
    # Sobel by hand: x-derivative [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]] with zero padding ('same'), cross-correlated.
    padded = nn.functional.pad(grey, (1, 1, 1, 1))
    gx = torch.zeros(16, 16)
    for dy, row in enumerate(([-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0])):
        for dx, weight in enumerate(row):
            gx += weight * padded[dy:dy + 16, dx:dx + 16]
    torch.testing.assert_close(cell(names.index("sobel0")), unit(gx), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cell(names.index("box")), unit(nn.functional.avg_pool2d(padded[None, None], 3, 1)[0, 0]),
                               rtol=1e-5, atol=1e-5)
