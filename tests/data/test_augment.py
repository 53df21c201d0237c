"""Augmentation ops against hand computations (flip, translate, cutout), the recipe's op list, and bad input."""

import pytest
import torch
from torch import nn

from cnnlab.data.augment import OPS, Augmentation, Cutout, DataFacts, Flip, Translate
from cnnlab.errors import CnnlabError
from cnnlab.runs.recipe import load_recipe


def augment_batch(x: torch.Tensor, ops: tuple, g: torch.Generator) -> torch.Tensor:
    for op in ops:
        x = op(x, g)
    return x


def test_flip_translate_cutout_by_hand() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    flipped = augment_batch(x, (Flip(),), g)
    is_flipped = (flipped == x.flip(3)).flatten(1).all(1)
    assert ((flipped == x).flatten(1).all(1) | is_flipped).all() and 10 < is_flipped.sum() < 54
    assert torch.equal(augment_batch(x, (Flip(p=1.0),), g), x.flip(3)) and torch.equal(augment_batch(x, (Flip(p=0.0),), g), x)
    shifted = augment_batch(x, (Translate(1),), g)
    # Every crop is the input shifted by at most one pixel with zeros coming in.
    assert all(any(torch.equal(s[0], torch.roll(nn.functional.pad(x[0, 0], (1, 1, 1, 1)), (dy, dx), (0, 1))[1:5, 1:5])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)) for s in shifted)
    cut = augment_batch(torch.ones(8, 1, 9, 9), (Cutout(3),), g)
    assert ((cut == 0).flatten(1).sum(1) <= 9).all() and (cut == 0).any()


def test_ops_apply_in_order_and_draw_one_stream() -> None:
    x = torch.randn(16, 3, 8, 8)
    ops = (Flip(), Translate(2), Cutout(3))
    a = augment_batch(x, ops, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    b = Cutout(3)(Translate(2)(Flip()(x, g), g), g)
    assert torch.equal(a, b)


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
