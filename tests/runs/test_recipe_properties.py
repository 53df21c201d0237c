"""Property-based: random recipe mappings and overrides raise nothing but CnnlabError."""

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cnnlab.errors import CnnlabError
from cnnlab.runs.recipe import Recipe, load_recipe, recipe_from_dict

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = ["epochs", "batch_size", "seed", "optim", "optim.lr", "optim.name", "schedule.milestones", "augment",
        "augment.flip", "augment.crop_padding", "augment.cutout", "augment.translate.padding", "augment.flip.p",
        "data.val_fraction", "input_pad", "tta", "precision", "ema_decay", "loss", "runtime.workers", "nope", "a.b.c"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True), st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.sampled_from(KEYS + ["op", "p"]), inner, max_size=3)),
                      max_leaves=8)


@SETTINGS
@given(data=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5))
@example(data={"optim": True, "epochs": None, "ema_decay": None})  # a flat key beside a section that is no mapping
def test_random_mappings_raise_only_its_error(data: dict) -> None:
    try:
        recipe = recipe_from_dict(data)
    except CnnlabError:
        return
    assert isinstance(recipe, Recipe)


@SETTINGS
@given(overrides=st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), st.text(max_size=12)),
    st.text(max_size=16)), max_size=4))
def test_random_overrides_raise_only_its_error(overrides: list[str]) -> None:
    try:
        recipe = load_recipe("default", overrides)
    except CnnlabError:
        return
    assert isinstance(recipe, Recipe)
