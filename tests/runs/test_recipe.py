"""Recipes: YAML round trip, typed dotted overrides, one-line errors, the named recipes."""

import pytest

from cnnlab.errors import CnnlabError
from cnnlab.runs.recipe import (
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
    assert 28 + 2 * lenet.data.input_pad == 32  # MNIST padded to LeNet-5's input


def test_overrides_are_typed_and_dotted() -> None:
    recipe = load_recipe("default", ["optim.lr=0.05", "epochs=3", "precision=bf16", "ema_decay=0.999",
                                     "schedule.milestones=[2, 4]", "optim.nesterov=false"])
    assert recipe.optim.lr == 0.05 and recipe.epochs == 3 and recipe.runtime.precision is Precision.BF16
    assert recipe.optim.ema_decay == 0.999 and recipe.schedule.milestones == (2, 4)
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
    with pytest.raises(CnnlabError, match="ablation, cifar-augment, cifar-crops, default, degradation, detection, digits, lenet-mnist, mnist-speed, resnet-cifar, segmentation, shuffled-pixels, snapshot-cifar, speedrun, transfer-cifar, transferability"):
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
    ("seed=18446744073709551616", "seed must lie in"),
    ("augment.cutout=-3", "cutout size=-3 must be >= 1"),
    ("augment.crop_padding=-3", "translate padding=-3 must be >= 0"),
    ("evaluation.batch_size=0", "evaluation.batch_size must be >= 1"),
    ("schedule.onecycle_peak_at=1.0", "onecycle_peak_at must lie in"),
])
def test_out_of_range_values_are_one_line_errors(override: str, message: str) -> None:
    with pytest.raises(CnnlabError, match=message):
        load_recipe("default", [override])


def test_runtime_keys_do_not_change_the_digest() -> None:
    base = load_recipe("default")
    assert load_recipe("default", ["workers=0", "stream=true"]).digest() == base.digest()
    assert load_recipe("default", ["epochs=3"]).digest() != base.digest()


def test_flat_first_release_keys_read_as_sections() -> None:
    from cnnlab.data.augment import Cutout, Flip, Translate

    flat = recipe_from_dict({"label_smoothing": 0.1, "precision": "bf16", "ema_decay": 0.99, "input_pad": 2,
                             "tta": "flip", "early_stopping_patience": 4, "whiten_init": True, "workers": 2,
                             "augment": {"flip": True, "crop_padding": 4, "cutout": 0}})
    sectioned = recipe_from_dict({"loss": {"label_smoothing": 0.1}, "runtime": {"precision": "bf16", "workers": 2},
                                  "optim": {"ema_decay": 0.99}, "data": {"input_pad": 2}, "evaluation": {"tta": "flip"},
                                  "schedule": {"early_stopping_patience": 4}, "model": {"whiten_init": True},
                                  "augment": [{"op": "flip"}, {"op": "translate", "padding": 4}]})
    assert flat == sectioned and flat.augment == (Flip(0.5), Translate(4))
    with pytest.raises(CnnlabError, match="gives both label_smoothing and loss.label_smoothing"):
        recipe_from_dict({"label_smoothing": 0.1, "loss": {"label_smoothing": 0.2}})
    # Dotted overrides of the first release edit the op list; new-style ones name the op.
    recipe = load_recipe("resnet-cifar", ["augment.crop_padding=2", "augment.cutout=5", "augment.flip=false"])
    assert recipe.augment == (Translate(2), Cutout(5))
    assert load_recipe("resnet-cifar", ["augment.flip.p=0.25"]).augment == (Flip(0.25), Translate(4))
    assert load_recipe("resnet-cifar", ["augment=[]"]).augment == ()
    assert load_recipe("default", ["augment.cutout=4", "augment.flip=true"]).augment == (Flip(), Cutout(4))


@pytest.mark.parametrize("data, message", [
    ({"augment": [{"op": "spin"}]}, "op 'spin' is not one of flip, vflip, translate"),
    ({"augment": [{"padding": 2}]}, "needs a mapping with op"),
    ({"augment": [{"op": "translate", "pixels": 2}]}, "unknown recipe key augment.translate.pixels"),
    ({"augment": {"rotate": 3}}, "unknown recipe key augment.rotate"),
])
def test_tagged_union_errors_name_the_key(data, message: str) -> None:
    with pytest.raises(CnnlabError, match=message) as error:
        recipe_from_dict(data)
    assert "\n" not in str(error.value)


def test_the_first_releases_digests_still_match(tmp_path) -> None:
    # Hashes that cnnlab 0.1.0 wrote into checkpoints: resume of its runs accepts them.
    assert load_recipe("default").legacy_digest() == "60eed26e8a5a8f02"
    assert load_recipe("resnet-cifar", ["augment.cutout=5", "tta=flip"]).legacy_digest() == "d05f580325f6b72a"
    assert load_recipe("default", ["schedule.onecycle_peak_at=0.25"]).legacy_digest() is None  # 0.1.0 had no such key
    assert load_recipe("lenet-mnist").legacy_digest() is None  # nor evaluation.weights


def test_sectioned_yaml_round_trip_keeps_ops(tmp_path) -> None:
    recipe = load_recipe("speedrun")
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe.to_yaml())
    assert load_recipe(str(path)) == recipe
    assert recipe.to_dict()["augment"] == [{"op": "flip", "p": 0.5}, {"op": "translate", "p": 1.0, "padding": 2}]


def test_keys_added_later_leave_earlier_runs_digest_alone() -> None:
    """Digests of the release before data.random_labels and adversarial: runs written by it still resume."""
    assert Recipe().digest() == "5b3a2a942ef8c6ad"
    assert load_recipe("lenet-mnist").digest() == "c674b83d106ccacf"
    assert load_recipe("resnet-cifar").digest() == "3d0383d71312effe"
    # Setting a later key is a different computation, so it gets a digest of its own.
    assert load_recipe("lenet-mnist", ["data.random_labels=true"]).digest() != "c674b83d106ccacf"
    assert load_recipe("lenet-mnist", ["adversarial.method=pgd"]).digest() != "c674b83d106ccacf"
    assert load_recipe("lenet-mnist", ["adversarial.eps=0.1"]).digest() != "c674b83d106ccacf"
