"""Recipes: YAML round trip, typed dotted overrides, one-line errors, the named recipes."""

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.train.recipe import (
    RECIPE_DIR,
    OptimizerName,
    Precision,
    Recipe,
    ScheduleName,
    load_recipe,
    recipe_from_dict,
)


def test_named_recipes_load() -> None:
    assert {p.stem for p in RECIPE_DIR.glob("*.yaml")} >= {"default", "lenet-mnist", "resnet-cifar"}
    resnet = load_recipe("resnet-cifar")
    assert resnet.optim.name is OptimizerName.SGD and resnet.optim.weight_decay == 1e-4
    assert resnet.schedule.name is ScheduleName.MULTISTEP and resnet.schedule.milestones == (91, 136)
    lenet = load_recipe("lenet-mnist")
    assert lenet.optim.nesterov and lenet.schedule.name is ScheduleName.ONECYCLE
    assert 28 + 2 * lenet.input_pad == 32  # MNIST padded to LeNet-5's input


def test_overrides_are_typed_and_dotted() -> None:
    recipe = load_recipe("default", ["optim.lr=0.05", "epochs=3", "precision=bf16", "ema_decay=0.999",
                                     "schedule.milestones=[2, 4]", "optim.nesterov=false"])
    assert recipe.optim.lr == 0.05 and recipe.epochs == 3 and recipe.precision is Precision.BF16
    assert recipe.ema_decay == 0.999 and recipe.schedule.milestones == (2, 4)
    assert recipe.optim.nesterov is False
    assert recipe.optim.momentum == 0.9  # untouched fields keep the file's value


def test_yaml_round_trip_and_digest(tmp_path) -> None:
    recipe = load_recipe("default", ["optim.lr=0.2"])
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe.to_yaml())
    again = load_recipe(str(path))
    assert again == recipe and again.digest() == recipe.digest()
    assert load_recipe(str(path), ["epochs=31"]).digest() != recipe.digest()


def test_frozen() -> None:
    with pytest.raises(AttributeError):
        Recipe().epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim.lrr=0.1"], "unknown recipe key optim.lrr"),
        (["epochs=ten"], "recipe key epochs takes a number"),
        (["epochs=2.5"], "recipe key epochs takes a number"),
        (["optim.name=lbfgs"], "is not one of sgd, adam, adamw, rmsprop"),
        (["compile=maybe"], "takes true or false"),
        (["epochs"], "must look like key=value"),
        (["epochs.x=1"], "is not a section"),
    ],
)
def test_bad_overrides_are_one_line_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(CnnlabError, match=message) as error:
        load_recipe("default", overrides)
    assert "\n" not in str(error.value)


def test_unknown_recipe_names_the_known_ones() -> None:
    with pytest.raises(CnnlabError, match="default, digits, lenet-mnist, mnist-speed, resnet-cifar, speedrun"):
        load_recipe("nonexistent")


def test_partial_mapping_keeps_defaults() -> None:
    assert recipe_from_dict({"optim": {"lr": 0.3}}) == Recipe(optim=Recipe().optim.__class__(lr=0.3))


@pytest.mark.parametrize("override, message", [
    ("epochs=0", "epochs must be >= 1"),
    ("input_size=0", "input_size must be >= 1"),
    ("input_pad=-1", "input_pad must be >= 0"),
    ("workers=-2", "workers must be >= 0"),
    ("ema_decay=1.0", "ema_decay must lie in"),
    ("val_fraction=1.5", "val_fraction must lie in"),
])
def test_out_of_range_values_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        load_recipe("default", [override])


def test_runtime_keys_do_not_change_the_digest() -> None:
    base = load_recipe("default")
    assert load_recipe("default", ["workers=0", "stream=true"]).digest() == base.digest()
    assert load_recipe("default", ["epochs=3"]).digest() != base.digest()
