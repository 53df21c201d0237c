"""What every command shares: the one-line usage errors, and the parsers of sizes and numbers."""

from __future__ import annotations

import argparse
from typing import NoReturn

from cnnlab.errors import CnnlabError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (problem and where to look), not a usage dump; help shows defaults."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        from cnnlab.cli.options import Formatter

        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        """Exit with status 2 and one line."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_ints(text: str, what: str, example: str = "3x224x224") -> tuple[int, ...]:
    """Return the integers of 'AxBxC' (or a single 'A'), or raise naming the expected form."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise CnnlabError(f"{what} {text!r} is malformed: write integers joined by x, e.g. {example}") from None
    if any(v < 1 for v in values):
        raise CnnlabError(f"{what} {text!r} must hold positive sizes, e.g. {example}")
    return values


def positive_int(text: str) -> int:
    """Return an integer >= 1 (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def positive_float(text: str) -> float:
    """Return a number > 0 (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0")
    return value


def padding_value(text: str) -> int | str:
    """Return an integer padding, or the policy name for the arithmetic to check."""
    try:
        return int(text)
    except ValueError:
        return text


def _flat(value: object, prefix: str = "") -> dict[str, object]:
    """Return nested dicts as one level of dotted keys; lists of numbers joined by spaces."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    if isinstance(value, list | tuple) and all(not isinstance(v, dict | list | tuple) for v in value):
        return {prefix[:-1]: " ".join(str(v) for v in value)}
    if isinstance(value, list | tuple):
        out = {}
        for index, item in enumerate(value):
            out.update(_flat(item, f"{prefix}{index}."))
        return out
    return {prefix[:-1]: value}


def emit(result: object, form: str) -> bool:
    """Print `result` as JSON or CSV for --format json / csv and return True; return False for text (the caller prints)."""
    import csv
    import json
    import sys

    if form == "json":
        print(json.dumps(result, indent=2))
        return True
    if form != "csv":
        return False
    rows = result if isinstance(result, list) else [result]
    flat = [_flat(row) for row in rows]
    columns = list(dict.fromkeys(key for row in flat for key in row))
    writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return True
