"""Raw recipe data before it is typed: dotted keys, the first release's flat keys, augment op lists.

A recipe file or override is plain data first. Keys of cnnlab 0.1.0 (`label_smoothing`,
`precision`, `augment: {flip, crop_padding, cutout}`, ...) are moved to their sections here,
in files and overrides alike, so `cnnlab.runs.recipe` only ever types the sectioned form.
"""

from __future__ import annotations

from typing import Any

from cnnlab.data.augment import OPS, Cutout, Flip, Translate
from cnnlab.errors import CnnlabError

# Flat keys of the first release and where they live now.
LEGACY_KEYS = {
    "val_fraction": "data.val_fraction", "input_size": "data.input_size", "input_pad": "data.input_pad",
    "whiten_init": "model.whiten_init", "ema_decay": "optim.ema_decay",
    "early_stopping_patience": "schedule.early_stopping_patience",
    "label_smoothing": "loss.label_smoothing", "aux_loss_weight": "loss.aux_loss_weight",
    "precision": "runtime.precision", "channels_last": "runtime.channels_last", "compile": "runtime.compile",
    "deterministic": "runtime.deterministic", "stream": "runtime.stream", "workers": "runtime.workers",
    "tta": "evaluation.tta",
}
# The first release's augment mapping: key -> (op, parameter); false or 0 leaves the op out.
LEGACY_AUGMENT = {"flip": (Flip, None), "crop_padding": (Translate, "padding"), "cutout": (Cutout, "size")}
LEGACY_ORDER = [op.tag for op, _ in LEGACY_AUGMENT.values()]  # the order the first release applied them in


def _set_op(ops: list[Any], tag: str, parameter: str | None, value: Any) -> list[Any]:
    """Return raw augment ops with op `tag` set (its `parameter` to `value`), or left out for false / 0 / null."""
    others = [op for op in ops if _tag(op) != tag]
    if value is None or value is False or (parameter is not None and value == 0 and tag in LEGACY_ORDER):
        return others
    current = next((dict(op) if isinstance(op, dict) else {"op": op} for op in ops if _tag(op) == tag), {"op": tag})
    if parameter is not None:
        current[parameter] = value
    elif value is not True:
        raise CnnlabError(f"recipe key augment.{tag} takes true or false, got {value!r}")
    if any(_tag(op) == tag for op in ops):
        return [current if _tag(op) == tag else op for op in ops]
    # A new op goes where the first release applied it: flip, translate, cutout, then the rest.
    rank = {t: i for i, t in enumerate(LEGACY_ORDER)}
    position = next((i for i, op in enumerate(ops) if rank.get(_tag(op), 99) > rank.get(tag, 99)), len(ops))
    return [*ops[:position], current, *ops[position:]]


def _tag(op: Any) -> Any:
    return op.get("op") if isinstance(op, dict) else op


def _legacy_augment(mapping: dict[str, Any]) -> list[Any]:
    """Return the ops list of a first-release augment mapping ({flip, crop_padding, cutout})."""
    unknown = sorted(set(mapping) - set(LEGACY_AUGMENT))
    if unknown:
        raise CnnlabError(f"unknown recipe key augment.{unknown[0]}: write augment as a list of ops "
                          f"({', '.join(OPS)}), or use flip, crop_padding, cutout")
    ops: list[Any] = []
    for key, (op, parameter) in LEGACY_AUGMENT.items():
        if key in mapping:
            ops = _set_op(ops, op.tag, parameter, mapping[key])
    return ops


def _merge(base: dict[str, Any], dotted: str, value: Any) -> None:
    head, _, rest = dotted.partition(".")
    if rest:
        child = base.setdefault(head, {})
        if not isinstance(child, dict):
            raise CnnlabError(f"recipe key {head} is not a section: write {head}=VALUE")
        _merge(child, rest, value)
    else:
        base[head] = value


def set_key(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted key of raw recipe data in place, reading first-release keys as their new places."""
    dotted = LEGACY_KEYS.get(dotted, dotted)
    section, _, rest = dotted.partition(".")
    if section != "augment" or not rest:
        _merge(data, dotted, value)
        return
    ops = data.get("augment") or []
    if isinstance(ops, dict):
        ops = _legacy_augment(ops)
    tag, _, parameter = rest.partition(".")
    if tag in LEGACY_AUGMENT and not parameter:  # augment.crop_padding=4, augment.flip=true
        op, parameter = LEGACY_AUGMENT[tag]
        tag = op.tag
    if tag not in OPS:
        raise CnnlabError(f"unknown recipe key augment.{tag}: ops are {', '.join(OPS)} (augment.OP.PARAM=VALUE)")
    data["augment"] = _set_op(ops, tag, parameter or None, value)


def canonical(data: dict[str, Any]) -> dict[str, Any]:
    """Return raw recipe data with first-release flat keys moved into their sections."""
    if not isinstance(data, dict):
        raise CnnlabError(f"a recipe is a mapping of keys, got {type(data).__name__}")
    result: dict[str, Any] = {}
    for key, value in data.items():
        if key in LEGACY_KEYS:
            section, _, name = LEGACY_KEYS[key].partition(".")
            if data.get(section) is not None and not isinstance(data[section], dict):
                raise CnnlabError(f"recipe {section} needs a mapping of keys, got {data[section]!r}")
            if name in (data.get(section) or {}):
                raise CnnlabError(f"recipe gives both {key} and {LEGACY_KEYS[key]}: keep one")
            _merge(result, LEGACY_KEYS[key], value)
        elif key == "augment" and isinstance(value, dict):
            result["augment"] = _legacy_augment(value)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = {**value, **result[key]}
        else:
            result[key] = value
    return result
