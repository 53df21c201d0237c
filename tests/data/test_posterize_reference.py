"""posterize against torchvision: exactly on 8-bit codes for 1..8 bits, and where torchvision's float path differs."""

from __future__ import annotations

import torch
import torchvision.transforms.v2.functional as TF

from cnnlab.data import augment as A

BITS = torch.arange(1, 9)  # one image per bit depth


def every_code() -> torch.Tensor:
    """Return all 256 uint8 values in each channel of one 16 x 16 image per bit depth (8, 3, 16, 16)."""
    codes = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    return torch.cat([codes, codes.flip(-1), codes.flip(-2)], 1).repeat(len(BITS), 1, 1, 1)


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    return A.OPS["posterize"]().apply(x, torch.zeros(1, 3, 1, 1), bits=bits)


def eight_bit_code(x: torch.Tensor) -> torch.Tensor:
    # The 8-bit code of a float in [0, 1] is floor(256 x), capped at 255: posterising keeps its top bits.
    # (Scaling by 255 instead would misplace levels k / 2**bits by up to one code.)
    return (x * 256).floor().clamp(max=255).to(torch.uint8)


def test_posterize_equals_torchvision_on_uint8_for_every_bit_depth() -> None:
    codes = every_code()
    ours = posterize(TF.to_dtype(codes, torch.float32, scale=True), BITS)  # codes / 255, as torchvision converts
    for i, bits in enumerate(BITS.tolist()):
        theirs = TF.posterize(codes[i], bits)
        assert torch.equal(eight_bit_code(ours[i]), theirs), bits
    # 8 bits is the identity on uint8, hence on the float image too.
    assert torch.equal(ours[-1], TF.to_dtype(codes[-1], torch.float32, scale=True))
    assert torch.equal(TF.posterize(codes[-1], 8), codes[-1])


def test_torchvision_float_path_at_8_bits_rounds_down_to_1_256() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.rand(4, 3, 17, 19, generator=g), torch.ones(1, 3, 17, 19)])  # 1.0: the largest drop
    theirs = TF.posterize(x, 8)
    assert torch.equal(theirs, (x * 256).floor().clamp(max=255) / 256)  # floor(256 x) / 256, capped at 255/256
    gap = (x - theirs).max().item()
    assert (x - theirs).min().item() >= 0 and gap <= 1 / 256
    assert gap == 1 / 256  # at x = 1: far beyond 1e-5
    ours = posterize(x, torch.full((len(x),), 8))
    assert torch.equal(ours, x)  # cnnlab keeps the image, as torchvision's uint8 path
    # Below 8 bits the float paths are one formula, floor(x 2**b) / 2**b capped at 1 - 2**-b: equal to the bit.
    for bits in range(1, 8):
        assert torch.equal(posterize(x, torch.full((len(x),), bits)), TF.posterize(x, bits)), bits
