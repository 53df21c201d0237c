"""Fixed kernels by hand: a ramp's Sobel response, a Gaussian's sum, Gabor's zero mean, the bank's channel layout."""

import pytest
import torch

from cnnlab.errors import CnnlabError
from cnnlab.nn.kernels import bank, box, gabor, gaussian, kernel_conv, laplacian, prewitt, sobel


def test_sobel_and_prewitt_on_a_ramp() -> None:
    ramp = torch.arange(8.0).repeat(8, 1)[None, None]  # value = column index
    sx = bank("sobel")(ramp)[0]
    # Inside the image the x-derivative of a unit ramp is 1 per column times Sobel's weight 1+2+1 = 4 (x2 for the span).
    torch.testing.assert_close(sx[0, 2:-2, 2:-2], torch.full((4, 4), 8.0))
    torch.testing.assert_close(sx[1, 2:-2, 2:-2], torch.zeros(4, 4))
    torch.testing.assert_close(bank("prewitt")(ramp)[0, 0, 2:-2, 2:-2], torch.full((4, 4), 6.0))
    assert sobel().shape == prewitt().shape == (2, 3, 3)


def test_smoothing_kernels_and_laplacian() -> None:
    assert float(gaussian(1.5).sum()) == pytest.approx(1.0) and gaussian(1.0).shape == (1, 7, 7)
    assert float(box(5).sum()) == pytest.approx(1.0)
    flat = torch.full((1, 1, 9, 9), 3.0)
    assert float(bank("laplacian")(flat)[0, 0, 3:-3, 3:-3].abs().max()) == 0.0
    assert float(laplacian(diagonal=True).sum()) == 0.0
    bank_of_gabors = gabor(orientations=6)
    assert bank_of_gabors.shape[0] == 6 and float(bank_of_gabors.flatten(1).mean(1).abs().max()) < 1e-6
    with pytest.raises(CnnlabError, match="sigma > 0"):
        gaussian(0.0)
    with pytest.raises(CnnlabError, match="choose sobel"):
        bank("canny")


def test_bank_keeps_colour_channels_apart_and_is_frozen() -> None:
    conv = kernel_conv(sobel(), channels=3)
    assert conv.out_channels == 6 and not conv.weight.requires_grad and conv.bias is None
    x = torch.zeros(1, 3, 6, 6)
    x[0, 1] = torch.arange(6.0).repeat(6, 1)  # only the green channel has a ramp
    y = conv(x)[0]
    assert float(y[0:2].abs().max()) == 0.0 and float(y[4:6].abs().max()) == 0.0 and float(y[2].abs().max()) > 0
