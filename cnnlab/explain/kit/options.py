"""Each explanation method's options as a typed, bounded dataclass, parsed as recipes are (cnnlab.runs.config).

`--option key=value` words reach a method only through `method_options`: a value of the wrong
type, a NaN, or one outside its bounds is a one-line error naming the method and the key. A
field left at None keeps the method's own default.
"""

from __future__ import annotations

import math
from dataclasses import field, fields
from typing import Any

from cnnlab.errors import CnnlabError


def bound(low: float | None = None, high: float | None = None, *, open_low: bool = False,
           choices: tuple[str, ...] = ()) -> Any:
    """Return a dataclass field defaulting to None (the method's default) with its bounds or its words.

    A field typed `str | float` takes a number or one of `choices`.
    """
    return field(default=None, metadata={"low": low, "high": high, "open_low": open_low, "choices": choices})


def _number_or_word(value: Any, where: str, words: tuple[str, ...]) -> float | str:
    """Return a number (YAML reads 1e-3 as a string) or one of `words`; refuse booleans, lists and mappings."""
    if isinstance(value, str) and value not in words:
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CnnlabError(f"{where}={value!r} is not one of {', '.join(words)} or a number")
    return float(value) if isinstance(value, int) else value


class Options:
    """Checks every set field against its bounds, as the recipe sections check theirs."""

    def __post_init__(self) -> None:
        for item in fields(self):  # type: ignore[arg-type]
            value, meta = getattr(self, item.name), item.metadata
            if value is None:
                continue
            where = f"option {item.name}"
            if "float" in str(item.type) and meta.get("choices"):  # a number or one of the words
                value = _number_or_word(value, where, meta["choices"])
                object.__setattr__(self, item.name, value)
            if isinstance(value, float) and not math.isfinite(value):
                raise CnnlabError(f"{where}={value} is not a finite number")
            if meta.get("choices") and isinstance(value, str) and value not in meta["choices"]:
                numbers = " or a number" if "float" in str(item.type) else ""
                raise CnnlabError(f"{where}={value!r} is not one of {', '.join(meta['choices'])}{numbers}")
            low, high = meta.get("low"), meta.get("high")
            if isinstance(value, int | float) and low is not None and (value < low or (meta.get("open_low") and value == low)):
                raise CnnlabError(f"{where}={value} must be {'>' if meta.get('open_low') else '>='} {low}")
            if isinstance(value, int | float) and high is not None and value > high:
                raise CnnlabError(f"{where}={value} must be <= {high}")

    def given(self) -> dict[str, Any]:
        """Return the options that were set, for the method's keyword arguments."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}  # type: ignore[arg-type]
