"""Each op with fixed per-image parameters against torchvision's functional op on every image, to 1e-5."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from cnnlab.data import augment as A
from cnnlab.data.augment.warps import perspective_coefficients

BILINEAR = InterpolationMode.BILINEAR
COUNT, SIZE = 6, 17  # an odd side: centres and flips are not symmetric by accident
MEAN = (0.4, 0.5, 0.6)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    # Smooth images with detail: random low-frequency colour plus a little noise, in [0, 1].
    g = torch.Generator().manual_seed(0)
    coarse = torch.nn.functional.interpolate(torch.rand(COUNT, 3, 5, 5, generator=g), size=(SIZE, SIZE + 2),
                                             mode="bilinear", align_corners=False)
    return (0.8 * coarse + 0.2 * torch.rand(COUNT, 3, SIZE, SIZE + 2, generator=g)).clamp(0, 1)


def fill() -> torch.Tensor:
    return torch.tensor(MEAN).view(1, 3, 1, 1)


def each(x: torch.Tensor, fn) -> torch.Tensor:
    return torch.stack([fn(i, image) for i, image in enumerate(x)])


def close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert (ours - theirs).abs().max().item() <= 1e-5


def draw(op: A.Op, x: torch.Tensor) -> dict[str, torch.Tensor]:
    return op.sample(len(x), tuple(x.shape[1:]), torch.Generator().manual_seed(3), x.device)


def test_flips(images) -> None:
    close(A.Flip().apply(images, fill()), each(images, lambda i, im: TF.horizontal_flip(im)))
    close(A.OPS["vflip"]().apply(images, fill()), each(images, lambda i, im: TF.vertical_flip(im)))


def test_translate_is_a_crop_of_the_padded_image(images) -> None:
    op = A.Translate(padding=3)
    p = draw(op, images)
    ours = op.apply(images, fill(), **p)
    theirs = each(images, lambda i, im: TF.crop(TF.pad(im, [3], fill=list(MEAN)), int(p["dy"][i]), int(p["dx"][i]),
                                                 SIZE, SIZE + 2))
    close(ours, theirs)


def test_resized_crop(images) -> None:
    op = A.OPS["resized_crop"](min_scale=0.2)
    p = draw(op, images)
    ours = op.apply(images, fill(), **p)
    theirs = each(images, lambda i, im: TF.resized_crop(im, int(p["top"][i]), int(p["left"][i]), int(p["h"][i]),
                                                        int(p["w"][i]), [SIZE, SIZE + 2], antialias=False))
    close(ours, theirs)


@pytest.mark.parametrize("tag, key, affine", [
    ("rotate", "angle", lambda im, v: TF.rotate(im, float(v), BILINEAR, fill=list(MEAN))),
    ("scale", "scale", lambda im, v: TF.affine(im, 0.0, [0, 0], float(v), [0.0, 0.0], BILINEAR, fill=list(MEAN))),
    ("shear", "shear", lambda im, v: TF.affine(im, 0.0, [0, 0], 1.0, v.tolist(), BILINEAR, fill=list(MEAN))),
])
def test_affine_warps(images, tag: str, key: str, affine) -> None:
    op = A.OPS[tag](**({"degrees": 30.0} if tag == "rotate" else {"y_degrees": 12.0} if tag == "shear" else {}))
    p = draw(op, images)
    close(op.apply(images, fill(), **p), each(images, lambda i, im: affine(im, p[key][i])))


def test_perspective(images) -> None:
    g = torch.Generator().manual_seed(1)
    h, w = SIZE, SIZE + 2
    corners = torch.tensor([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]).float()
    moved = (corners + torch.tensor([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * torch.randint(0, 5, (COUNT, 4, 2), generator=g))
    coefficients = perspective_coefficients(corners.expand(COUNT, -1, -1), moved)
    ours = A.OPS["perspective"]().apply(images, fill(), coefficients=coefficients)
    theirs = each(images, lambda i, im: TF.perspective(im, corners.int().tolist(), moved[i].int().tolist(), BILINEAR,
                                                       fill=list(MEAN)))
    close(ours, theirs)


def test_elastic(images) -> None:
    op = A.OPS["elastic"](alpha=6.0, sigma=2.0)
    p = draw(op, images)
    ours = op.apply(images, fill(), **p)
    close(ours, each(images, lambda i, im: TF.elastic(im, p["displacement"][i : i + 1], BILINEAR, fill=list(MEAN))))


def test_center_crop(images) -> None:
    close(A.OPS["center_crop"](size=10).apply(images, fill()), each(images, lambda i, im: TF.center_crop(im, [10, 10])))


def test_random_crop(images) -> None:
    op = A.OPS["random_crop"](size=10)
    p = draw(op, images)
    assert p["top"].max() <= images.shape[2] - 10 and p["left"].max() <= images.shape[3] - 10
    close(op.apply(images, fill(), **p),
          each(images, lambda i, im: TF.crop(im, int(p["top"][i]), int(p["left"][i]), 10, 10)))


@pytest.mark.parametrize("tag, reference", [
    ("brightness", TF.adjust_brightness), ("contrast", TF.adjust_contrast), ("saturation", TF.adjust_saturation),
    ("sharpness", TF.adjust_sharpness),
])
def test_enhancements(images, tag: str, reference) -> None:
    op = A.OPS[tag](magnitude=0.9)
    p = draw(op, images)
    close(op.apply(images, fill(), **p), each(images, lambda i, im: reference(im, float(p["factor"][i]))))


def test_hue_gamma_solarize(images) -> None:
    # posterize is compared on 8-bit codes, in tests/data/test_posterize_reference.py.
    for tag, key, reference in [("hue", "shift", TF.adjust_hue), ("gamma", "gamma", TF.adjust_gamma),
                                ("solarize", "threshold", TF.solarize)]:
        op = A.OPS[tag]()
        p = draw(op, images)
        close(op.apply(images, fill(), **p), each(images, lambda i, im, r=reference, k=key, p=p: r(im, float(p[k][i]))))


def test_hue_on_grey_and_saturated_pixels() -> None:
    # The conversion's edge cases: grey (max == min), black, pure primaries and a channel tie.
    x = torch.tensor([[0.5, 0.5, 0.5], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0.2, 0.7, 0.7]]).T
    x = x.reshape(1, 3, 1, 7).repeat(4, 1, 1, 1)
    shift = torch.tensor([-0.5, -0.2, 0.3, 0.5])
    close(A.OPS["hue"]().apply(x, fill(), shift=shift), each(x, lambda i, im: TF.adjust_hue(im, float(shift[i]))))


def test_colour_ops_without_parameters(images) -> None:
    for tag, reference in [("invert", TF.invert), ("equalize", TF.equalize), ("autocontrast", TF.autocontrast),
                           ("grayscale", lambda im: TF.rgb_to_grayscale(im, 3))]:
        close(A.OPS[tag]().apply(images, fill()), each(images, lambda i, im, r=reference: r(im)))


def test_gaussian_blur(images) -> None:
    op = A.OPS["gaussian_blur"](kernel_size=7)
    p = draw(op, images)
    close(op.apply(images, fill(), **p), each(images, lambda i, im: TF.gaussian_blur(im, [7, 7], [float(p["sigma"][i])] * 2)))


def test_random_erasing_and_cutout(images) -> None:
    op = A.OPS["random_erasing"](noise=False)
    p = draw(op, images)
    value = torch.tensor(MEAN).view(3, 1, 1)
    close(op.apply(images, fill(), **p), each(images, lambda i, im: TF.erase(
        im, int(p["top"][i]), int(p["left"][i]), int(p["h"][i]), int(p["w"][i]), value)))
    cut = A.Cutout(size=5)
    p = draw(cut, images)

    def reference(i: int, im: torch.Tensor) -> torch.Tensor:
        top, left = max(int(p["cy"][i]) - 2, 0), max(int(p["cx"][i]) - 2, 0)
        bottom, right = min(int(p["cy"][i]) + 3, SIZE), min(int(p["cx"][i]) + 3, SIZE + 2)
        return TF.erase(im, top, left, bottom - top, right - left, value)

    close(cut.apply(images, fill(), **p), each(images, reference))
