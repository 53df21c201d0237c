"""Typed configuration: plain mappings (YAML, JSON) <-> frozen dataclasses, with one-line errors.

Fields may be numbers, booleans, strings, StrEnums, `X | None`, nested dataclasses, tuples of
any of these, and tagged unions: a union of dataclasses that each carry ClassVars `tag_key`
and `tag` (`{op: translate, padding: 4}` builds `Translate(padding=4)`). Every error names
the dotted key and what it accepts; `what` says whose key it is ("recipe", "data.json").
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from enum import StrEnum
from typing import Any, get_args, get_origin, get_type_hints

from cnnlab.errors import CnnlabError


def to_plain(value: Any) -> Any:
    """Return `value` as plain data (dicts, lists, numbers, strings); tagged dataclasses carry their tag."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        tag = {value.tag_key: value.tag} if hasattr(type(value), "tag_key") else {}
        return {**tag, **{f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


def _members(kind: Any) -> tuple[Any, ...]:
    """Return the alternatives of a union type (X | Y or Union[X, Y]), else ()."""
    if get_origin(kind) in (typing.Union, types.UnionType):
        return get_args(kind)
    return ()


def convert(value: Any, kind: Any, key: str, what: str = "recipe") -> Any:
    """Return `value` as the type `kind`, or raise naming the key and what it accepts."""
    members = _members(kind)
    if type(None) in members:  # X | None
        if value is None:
            return None
        rest = tuple(m for m in members if m is not type(None))
        kind = rest[0] if len(rest) == 1 else typing.Union[rest]  # noqa: UP007 - built at run time
        members = _members(kind)
    if members and all(dataclasses.is_dataclass(m) and hasattr(m, "tag_key") for m in members):
        return _tagged(value, members, key, what)
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, dict):
            raise CnnlabError(f"{what} key {key} needs a mapping of its fields, got {value!r}")
        return build(kind, value, key + ".", what)
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        try:
            return kind(str(value).lower())
        except ValueError:
            raise CnnlabError(f"{what} key {key}={value!r} is not one of {', '.join(m.value for m in kind)}") from None
    if get_origin(kind) is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(convert(v, get_args(kind)[0], f"{key}[{i}]" if len(items) > 1 else key, what) for i, v in enumerate(items))
    if kind is bool:
        if not isinstance(value, bool):
            raise CnnlabError(f"{what} key {key} takes true or false, got {value!r}")
        return value
    if kind in (int, float):
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not float(value).is_integer()):
            raise CnnlabError(f"{what} key {key} takes a number ({kind.__name__}), got {value!r}")
        if not math.isfinite(value):  # YAML reads .nan and .inf; no key of ours means either
            raise CnnlabError(f"{what} key {key} takes a finite number, got {value!r}")
        return kind(value)
    if kind is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise CnnlabError(f"{what} key {key} takes a string, got {value!r}")
        return str(value)
    return value


def _tagged(value: Any, members: tuple[type, ...], key: str, what: str) -> Any:
    """Return the member of a tagged union that `value[tag_key]` names, built from the other keys."""
    tag_key = members[0].tag_key
    names = ", ".join(m.tag for m in members)
    if isinstance(value, str):  # a bare name: the op with its defaults
        value = {tag_key: value}
    if not isinstance(value, dict) or tag_key not in value:
        raise CnnlabError(f"{what} key {key} needs a mapping with {tag_key}: one of {names}, got {value!r}")
    chosen = next((m for m in members if m.tag == value[tag_key]), None)
    if chosen is None:
        raise CnnlabError(f"{what} key {key}: {tag_key} {value[tag_key]!r} is not one of {names}")
    rest = {k: v for k, v in value.items() if k != tag_key}
    return build(chosen, rest, f"{key}.{chosen.tag}.", what)


def build(cls: type, data: dict[str, Any], prefix: str = "", what: str = "recipe") -> Any:
    """Return the dataclass `cls` built from a (possibly partial) mapping; missing keys keep their defaults."""
    if not isinstance(data, dict):
        raise CnnlabError(f"{what} {prefix.rstrip('.') or 'document'} needs a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise CnnlabError(f"unknown {what} key {prefix}{unknown[0]}: known keys are {', '.join(prefix + n for n in sorted(names))}")
    try:
        return cls(**{k: convert(v, hints[k], prefix + k, what) for k, v in data.items()})
    except TypeError as error:  # a required field left out
        raise CnnlabError(f"{what} {prefix.rstrip('.') or 'document'} is incomplete ({error})") from None
