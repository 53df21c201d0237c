"""The numeric domains of the command line: integers, numbers, radii, sizes, image sides, index ranges, padding.

Each is a `cli.domains.Domain`: it parses a word, refuses one outside it with a one-line reason,
and lists values outside and at the edge of itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cnnlab.cli.domains import Domain, Fail, check_allocation


@dataclass(frozen=True)
class Integer(Domain):
    """Whole numbers in [low, high] (either end open-ended when None)."""

    low: int | None = None
    high: int | None = None
    metavar: str = "N"

    def __call__(self, text: str) -> int:
        """Return the integer, or raise naming the bounds."""
        try:
            value = int(text.strip())
        except ValueError:
            raise Fail(f"{text!r} is not an integer") from None
        if self.low is not None and value < self.low:
            raise Fail(f"{value} must be >= {self.low}")
        if self.high is not None and value > self.high:
            raise Fail(f"{value} must be <= {self.high}")
        return value

    def outside(self) -> tuple[str, ...]:
        """Return a word, a fraction and the integers just past each bound."""
        words = ["abc", "1.5", "nan"]
        if self.low is not None:
            words.append(str(self.low - 1))
        if self.high is not None:
            words.append(str(self.high + 1))
        return tuple(words)

    def edges(self) -> tuple[str, ...]:
        """Return the bounds themselves."""
        return tuple(str(v) for v in (self.low, self.high) if v is not None)


@dataclass(frozen=True)
class Number(Domain):
    """Finite real numbers in [low, high]; `open_low` excludes low itself (a rate > 0)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    metavar: str = "X"

    def __call__(self, text: str) -> float:
        """Return the number, or raise naming the bounds (never NaN or infinity)."""
        try:
            value = float(text.strip())
        except ValueError:
            raise Fail(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise Fail(f"{text} is not a finite number")
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            raise Fail(f"{value:g} must be {'>' if self.open_low else '>='} {self.low:g}")
        if self.high is not None and (value > self.high or (self.open_high and value == self.high)):
            raise Fail(f"{value:g} must be {'<' if self.open_high else '<='} {self.high:g}")
        return value

    def outside(self) -> tuple[str, ...]:
        """Return a word, NaN, infinities and the values just past each bound."""
        words = ["abc", "nan", "inf", "-inf"]
        if self.low is not None:
            words.append(repr(self.low) if self.open_low else repr(self.low - 1))
        if self.high is not None:
            words.append(repr(self.high) if self.open_high else repr(self.high + 1))
        return tuple(words)

    def edges(self) -> tuple[str, ...]:
        """Return the closed bounds, and values just inside the open ones."""
        words = []
        if self.low is not None:
            words.append(repr(self.low + 1e-6) if self.open_low else repr(self.low))
        if self.high is not None:
            words.append(repr(self.high - 1e-6) if self.open_high else repr(self.high))
        return tuple(words)


@dataclass(frozen=True)
class Fraction(Domain):
    """A radius such as eps: a number or a ratio like 8/255, finite and >= 0."""

    metavar: str = "X"

    def __call__(self, text: str) -> float:
        """Return the value of `a` or `a/b`."""
        top, slash, bottom = text.strip().partition("/")
        try:
            value = float(top) / float(bottom) if slash else float(top)
        except (ValueError, ZeroDivisionError):
            raise Fail(f"{text!r} is not a number: write e.g. 0.03 or 8/255") from None
        if not math.isfinite(value):
            raise Fail(f"{text} is not a finite number: write e.g. 0.03 or 8/255")
        if value < 0:
            raise Fail(f"{text} must be >= 0")
        return value

    def outside(self) -> tuple[str, ...]:
        """Return NaN, infinity, a negative, a division by zero and a word."""
        return ("nan", "inf", "-0.1", "1/0", "nan/2", "abc")

    def edges(self) -> tuple[str, ...]:
        """Return zero and a ratio."""
        return ("0", "8/255")


@dataclass(frozen=True)
class Fractions(Domain):
    """A non-empty comma list of radii, each as `Fraction` reads it."""

    metavar: str = "X,Y"

    def __call__(self, text: str) -> tuple[float, ...]:
        """Return the radii."""
        words = text.split(",")
        if not text.strip() or any(not w.strip() for w in words):
            raise Fail(f"{text!r} is not a comma list of numbers, e.g. 0,0.1,8/255")
        return tuple(Fraction()(w) for w in words)

    def outside(self) -> tuple[str, ...]:
        """Return the empty list, an empty member and a NaN member."""
        return ("", "0,,1", "0,nan")

    def edges(self) -> tuple[str, ...]:
        """Return zero alone."""
        return ("0",)

@dataclass(frozen=True)
class Sizes(Domain):
    """Positive sizes joined by x, e.g. 3x224x224 (`parts`: how many may be given; empty: any number)."""

    example: str = "3x224x224"
    parts: tuple[int, ...] = (1, 2, 3)
    metavar: str = "AxB"

    def __call__(self, text: str) -> tuple[int, ...]:
        """Return the sizes, or raise naming the form."""
        words = text.lower().replace("*", "x").split("x")
        try:
            values = tuple(int(w) for w in words)
        except ValueError:
            raise Fail(f"{text!r} is malformed: write integers joined by x, e.g. {self.example}") from None
        if any(v < 1 for v in values):
            raise Fail(f"{text!r} must hold positive sizes, e.g. {self.example}")
        if self.parts and len(values) not in self.parts:
            raise Fail(f"{text!r} has {len(values)} sizes, not {' or '.join(map(str, self.parts))}: e.g. {self.example}")
        return values

    def outside(self) -> tuple[str, ...]:
        """Return a zero size, a negative one and a malformed one."""
        return ("0", "-4", "3y3", "")

    def edges(self) -> tuple[str, ...]:
        """Return the examples (`32 or 32x32` gives both)."""
        return tuple(self.example.split(" or "))


@dataclass(frozen=True)
class ImageSides(Domain):
    """Image sides in pixels (a comma list when `many`), refused where their activations would not fit memory.

    The estimate is `images` x side^2 x `bytes_per_pixel`: the image, and the float32
    activations and gradients of a small CNN (256 maps) at that side.
    """

    low: int = 1
    many: bool = False
    images: int = 1  # images processed at once at this side
    bytes_per_pixel: int = 1024  # 256 float32 maps per pixel: activations and their gradients
    metavar: str = "PX"

    def __call__(self, text: str) -> int | tuple[int, ...]:
        """Return the side (or sides), or raise naming the bound or the memory they need."""
        words = [w for w in text.split(",")] if self.many else [text]
        sides = []
        for word in words:
            try:
                side = int(word.strip())
            except ValueError:
                raise Fail(f"{word!r} is not an integer number of pixels") from None
            if side < self.low:
                raise Fail(f"{side} must be >= {self.low} pixels")
            sides.append(side)
        biggest = max(sides)
        check_allocation(self.images * biggest * biggest * self.bytes_per_pixel, f"a side of {biggest} px",
                         "choose a smaller size")
        return tuple(sides) if self.many else sides[0]

    def outside(self) -> tuple[str, ...]:
        """Return a side below the bound, a word, and one far too large for any memory."""
        return (str(self.low - 1), "abc", "100000", "8,5000000" if self.many else "5000000")

    def edges(self) -> tuple[str, ...]:
        """Return the smallest side."""
        return (str(self.low),)


@dataclass(frozen=True)
class IntRanges(Domain):
    """Non-negative integers as a list of ranges: 0-15 or 0,3,7-9 (a range runs low to high), at most `most` of them."""

    most: int = 65_536
    metavar: str = "LIST"

    def __call__(self, text: str) -> tuple[int, ...]:
        """Return the integers the list names, in its order."""
        chosen: list[int] = []
        for part in text.split(","):
            low, dash, high = part.strip().partition("-")
            try:
                start, stop = int(low), int(high if dash else low)
            except ValueError:
                raise Fail(f"cannot read {text!r}: give a list like 0-15 or 0,3,7-9") from None
            if stop < start:
                raise Fail(f"the range {part.strip()} runs backwards: write {stop}-{start}")
            if stop - start + len(chosen) >= self.most:
                raise Fail(f"{text!r} names more than {self.most:,} channels: give a shorter list")
            chosen.extend(range(start, stop + 1))
        return tuple(chosen)

    def outside(self) -> tuple[str, ...]:
        """Return a backward range, a negative index, a word, the empty list and a range too long to hold."""
        return ("5-2", "-1", "a", "", "1,,2", "0-99999999999")

    def edges(self) -> tuple[str, ...]:
        """Return the first index, and a one-index range."""
        return ("0", "0-0")

@dataclass(frozen=True)
class Padding(Domain):
    """An integer padding >= 0, or a policy word for the arithmetic to check (valid, same, full)."""

    metavar: str = "P"

    def __call__(self, text: str) -> int | str:
        """Return the integer or the policy."""
        try:
            value = int(text)
        except ValueError:
            if not text.strip():
                raise Fail("it is empty: give an integer or valid, same, full") from None
            return text
        if value < 0:
            raise Fail(f"padding must be >= 0, got {value}")
        return value

    def outside(self) -> tuple[str, ...]:
        """Return a negative padding and the empty word."""
        return ("-1", "")

    def edges(self) -> tuple[str, ...]:
        """Return zero and a policy."""
        return ("0", "same")
