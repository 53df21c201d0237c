"""Augmentation ops against hand computations (flip, translate, cutout), the recipe's op list, and bad input."""

import pytest
import torch
from torch import nn

from cnnlab.data.augment import OPS, Augmentation, Cutout, DataFacts, Flip, Translate
from cnnlab.errors import CnnlabError
from cnnlab.runs.recipe import load_recipe


def apply_ops(x: torch.Tensor, ops: tuple, g: torch.Generator) -> torch.Tensor:
    """Apply ops by hand, one call each (the by-hand tests below test the ops, not the pipeline)."""
    for op in ops:
        x = op(x, g)
    return x


def test_flip_translate_cutout_by_hand() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    flipped = apply_ops(x, (Flip(),), g)
    is_flipped = (flipped == x.flip(3)).flatten(1).all(1)
    assert ((flipped == x).flatten(1).all(1) | is_flipped).all() and 10 < is_flipped.sum() < 54
    assert torch.equal(apply_ops(x, (Flip(p=1.0),), g), x.flip(3)) and torch.equal(apply_ops(x, (Flip(p=0.0),), g), x)
    shifted = apply_ops(x, (Translate(1),), g)
    # Every crop is the input shifted by at most one pixel with zeros coming in.
    assert all(any(torch.equal(s[0], torch.roll(nn.functional.pad(x[0, 0], (1, 1, 1, 1)), (dy, dx), (0, 1))[1:5, 1:5])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)) for s in shifted)
    cut = apply_ops(torch.ones(8, 1, 9, 9), (Cutout(3),), g)
    assert ((cut == 0).flatten(1).sum(1) <= 9).all() and (cut == 0).any()


def test_ops_apply_in_order_and_draw_one_stream() -> None:
    """The library's per-step call (the engine's) equals the ops unrolled by hand on one generator, then normalisation."""
    from cnnlab.data.augment import augment_batch
    from cnnlab.data.normalise import Normalisation

    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(16) % 10
    norm = Normalisation((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    ops = (Flip(), Translate(2), Cutout(3))
    augmentation = Augmentation.build(ops, DataFacts(3, 8, 8, norm.mean), num_classes=10)
    got, targets = augment_batch(augmentation, images, labels, norm, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    fill = torch.tensor(norm.mean).view(1, -1, 1, 1)
    pixels = Cutout(3)(Translate(2)(Flip()(images.float() / 255, g, fill), g, fill), g, fill)
    mean, std = torch.tensor(norm.mean).view(1, -1, 1, 1), torch.tensor(norm.std).view(1, -1, 1, 1)
    torch.testing.assert_close(got, (pixels - mean) / std, rtol=0, atol=1e-6)
    assert torch.equal(targets, labels)  # no mixing op: the labels pass through
    other, _ = augment_batch(augmentation, images, labels, norm, torch.Generator().manual_seed(6))
    assert not torch.equal(got, other)  # the draws come from the generator given


@pytest.mark.parametrize("make, message", [
    (lambda: Flip(p=1.5), "flip p=1.5 must lie in"),
    (lambda: Translate(-3), "translate padding=-3 must be >= 0"),
    (lambda: Cutout(-3), "cutout size=-3 must be >= 1"),
    (lambda: OPS["rotate"](degrees=-5), "rotate degrees=-5 must be >= 0"),
    (lambda: OPS["hue"](magnitude=0.7), "hue magnitude=0.7 must lie in"),
    (lambda: OPS["mixup"](p=2), "mixup p=2 must lie in"),
    (lambda: OPS["center_crop"](size=20, p=0.5), "center_crop p must be 1"),
    (lambda: OPS["random_crop"](size=20, p=0.5), "random_crop p must be 1"),
])
def test_bad_parameters_are_one_line_errors(make, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        make()


@pytest.mark.parametrize("overrides, message", [
    (["augment.spin.degrees=3"], "unknown recipe key augment.spin: ops are flip, "),
    (["augment.rotate.turns=3"], "unknown recipe key augment.rotate.turns: known keys are"),
    (["augment.brightness.magnitude=-0.2"], "augment brightness magnitude=-0.2 must be >= 0"),
    (["augment.flip.p=1.5"], "augment flip p=1.5 must lie in"),
])
def test_recipe_errors_name_the_op_and_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(CnnlabError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_recipe("default", overrides)


@pytest.mark.parametrize("op, message", [
    (OPS["hue"](), "augment hue needs RGB images but these have 1 channel"),
    (OPS["pca_lighting"](), "augment pca_lighting needs RGB images"),
    (OPS["color_jitter"](), "color_jitter saturation and hue need RGB images"),
    (OPS["center_crop"](size=40), "center_crop size=40 is larger than the 28x28 images: use size <= 28"),
    (OPS["random_crop"](size=29), "random_crop size=29 is larger than the 28x28 images: use size <= 28"),
    (OPS["translate"](padding=28), "translate padding=28 must be smaller than the 28x28 images"),
    (OPS["cutout"](size=29), "cutout size=29 is larger than the 28x28 images"),
])
def test_ops_that_cannot_apply_say_so_at_start_up(op, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        Augmentation.build((op,), DataFacts(1, 28, 28, (0.13,)))


def test_training_refuses_unfit_ops_before_the_first_step(tmp_path) -> None:
    from cnnlab.train.run import train_run

    out = tmp_path / "run"
    with pytest.raises(CnnlabError, match="augment hue needs RGB images"):
        train_run(data="digits", out=str(out), overrides=["epochs=1", "augment=[{op: hue}]"], console=None)
    assert not (out / "checkpoints").exists()
