"""The domains of the command line's words: the base `Domain`, `Fail`, and the domains of words, paths and pairs.

A *domain* is an argparse type that knows its own values: it parses a word, refuses one outside
it with a one-line reason (argparse turns that into exit 2), and lists values outside and at the
edge of itself, which `tests/cli/test_options.py` feeds to every option of every command. The
numeric domains (counts, numbers, radii, sizes, image sides, index ranges) are in `cli.numeric`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Fail = argparse.ArgumentTypeError


def available_memory() -> int | None:
    """Return the bytes of memory the system can still hand out, or None where it cannot say."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if count < 1000 or unit == "PB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{count:.0f} B"
        count /= 1000
    return f"{count:.1f} PB"


def check_allocation(need: float, what: str, fix: str) -> None:
    """Raise when `need` bytes exceed half of the memory available now, showing the estimate."""
    free = available_memory()
    if free is not None and need > free / 2:
        raise Fail(f"{what} needs about {_bytes(need)}, more than half of the {_bytes(free)} available: {fix}")


class Domain:
    """An argparse type that parses a word and knows which words lie outside it and at its edges."""

    metavar = "VALUE"

    def __call__(self, text: str) -> Any:
        """Return the parsed value, or raise argparse.ArgumentTypeError with the reason."""
        raise NotImplementedError

    def outside(self) -> tuple[str, ...]:
        """Return words this domain must refuse."""
        return ()

    def edges(self) -> tuple[str, ...]:
        """Return words at the edge of this domain, which it must accept."""
        return ()

@dataclass(frozen=True)
class Choice(Domain):
    """One of a fixed set of words."""

    choices: tuple[str, ...] = ()

    @property
    def metavar(self) -> str:  # type: ignore[override]
        """Return {a,b,c}, as argparse shows choices."""
        return "{" + ",".join(self.choices) + "}"

    def __call__(self, text: str) -> str:
        """Return the word when it is one of the choices."""
        if text not in self.choices:
            raise Fail(f"{text!r} is not one of {', '.join(self.choices)}")
        return text

    def outside(self) -> tuple[str, ...]:
        """Return a word no choice is, and the empty word."""
        return ("no-such-choice", "")

    def edges(self) -> tuple[str, ...]:
        """Return every choice."""
        return self.choices


@dataclass(frozen=True)
class Text(Domain):
    """A non-empty word: a path, a name, a data spec."""

    metavar: str = "TEXT"

    def __call__(self, text: str) -> str:
        """Return the word unless it is empty."""
        if not text.strip():
            raise Fail("it is empty")
        return text

    def outside(self) -> tuple[str, ...]:
        """Return the empty and the blank word."""
        return ("", "  ")


@dataclass(frozen=True)
class Folder(Text):
    """A folder to read from: any path but an existing file."""

    metavar: str = "DIR"

    def __call__(self, text: str) -> str:
        """Return the path unless it is empty or names a file."""
        super().__call__(text)
        if os.path.isfile(text):
            raise Fail(f"{text} is a file: give the folder that holds the data")
        return text

    def outside(self) -> tuple[str, ...]:
        """Return the empty word and an existing file."""
        return ("", os.path.abspath(__file__))


@dataclass(frozen=True)
class Device(Domain):
    """auto, cpu, cuda, cuda:N or mps."""

    metavar: str = "DEVICE"

    def __call__(self, text: str) -> str:
        """Return the device word when torch could name it."""
        if text in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", text):
            return text
        raise Fail(f"{text!r} is no device: write auto, cpu, cuda or cuda:N")

    def outside(self) -> tuple[str, ...]:
        """Return a misspelling and a malformed index."""
        return ("gpu", "cuda:x", "cuda:-1", "")

    def edges(self) -> tuple[str, ...]:
        """Return auto and cpu (the ones every machine has)."""
        return ("auto", "cpu")

@dataclass(frozen=True)
class Words(Domain):
    """A non-empty comma list of names; `known` lazily returns the allowed ones, `everything` the word for all."""

    known: Callable[[], Sequence[str]] | None = None
    everything: str | None = None
    what: str = "name"
    example: str = ""
    none: str | None = None  # the word for no names at all, where none is a choice
    metavar: str = "A,B"
    composed: Callable[[str], bool] | None = None  # whether a name outside `known` is a valid composition of known ones

    def __call__(self, text: str) -> tuple[str, ...]:
        """Return the names, every known one for `everything`, or raise naming an unknown one."""
        if self.none is not None and text.strip().lower() == self.none:
            return ()
        names = tuple(n.strip() for n in text.split(","))
        if not text.strip() or any(not n for n in names):
            raise Fail(f"{text!r} names no {self.what}: give a comma list{', e.g. ' + self.example if self.example else ''}")
        if self.known is None:
            return names
        known = list(self.known())
        if self.everything is not None and names == (self.everything,):
            return tuple(known)
        for name in names:
            if name not in known and not (self.composed is not None and self.composed(name)):
                import difflib

                close = difflib.get_close_matches(name, known, n=3)
                hint = f"did you mean {', '.join(close)}?" if close else f"choose from {', '.join(known)}"
                raise Fail(f"unknown {self.what} {name!r}: {hint}")
        return names

    def outside(self) -> tuple[str, ...]:
        """Return the empty list, an empty member and (with a known set) an unknown name."""
        return ("", ",", "a,,b") + (("no_such_name",) if self.known is not None else ())

    def edges(self) -> tuple[str, ...]:
        """Return the word for everything, or the example."""
        return tuple(w for w in (self.everything, self.example) if w)


@dataclass(frozen=True)
class Pair(Domain):
    """key=value, the value read as YAML (the recipe overrides' dialect); `empty`: whether `key=` (null) is a value."""

    empty: bool = True
    metavar: str = "KEY=VALUE"

    def __call__(self, text: str) -> tuple[str, Any]:
        """Return (key, value)."""
        from cnnlab.errors import CnnlabError
        from cnnlab.runs.recipe import parse_pair

        try:
            key, value = parse_pair(text)
        except CnnlabError as error:
            raise Fail(str(error)) from None
        if value is None and not self.empty:
            raise Fail(f"{text!r} has no value: write {key}=VALUE (leave the option out for the method's default)")
        return key, value

    def outside(self) -> tuple[str, ...]:
        """Return a word with no '=', one with no key, and (where a value is needed) one with none."""
        return ("steps", "=3") + (() if self.empty else ("steps=",))

    def edges(self) -> tuple[str, ...]:
        """Return a pair, and a pair with an empty value (null) where that is a value."""
        return ("steps=1",) + (("steps=",) if self.empty else ())


@dataclass(frozen=True)
class Override(Pair):
    """A recipe override key=value, checked as a pair and kept as written (the recipe resolves it)."""

    def __call__(self, text: str) -> str:  # type: ignore[override]
        """Return the word once it reads as key=value."""
        super().__call__(text)
        return text

@dataclass(frozen=True)
class Format(Choice):
    """text, json or csv; `table`, the old word for text, still works with a notice."""

    def __call__(self, text: str) -> str:
        """Return the format."""
        if text == "table":
            print("cnnlab: notice: --format table is now --format text (the old spelling goes in 0.3)", file=sys.stderr)
            return "text"
        return super().__call__(text)
