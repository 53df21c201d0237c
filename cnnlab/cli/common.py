"""What every command shares: the one-line usage errors, and the parsers of sizes and numbers."""

from __future__ import annotations

import argparse
from typing import NoReturn

from cnnlab.errors import CnnlabError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (problem and where to look), not a usage dump."""

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
