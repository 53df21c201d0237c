"""Every option of the command line, typed at one edge: domains, the shared options and the old spellings.

A *domain* is an argparse type that knows its own values: it parses a word, refuses one outside
it with a one-line reason (argparse turns that into exit 2), and lists values outside and at the
edge of itself, which `tests/cli/test_options.py` feeds to every option of every command. The
table `SHARED` maps each meaning shared by several commands to one flag, domain and help text;
`add()` puts an option on a parser from there, so two commands cannot drift apart.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
class Words(Domain):
    """A non-empty comma list of names; `known` lazily returns the allowed ones, `everything` the word for all."""

    known: Callable[[], Sequence[str]] | None = None
    everything: str | None = None
    what: str = "name"
    example: str = ""
    none: str | None = None  # the word for no names at all, where none is a choice
    metavar: str = "A,B"

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
            if name not in known:
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


@dataclass(frozen=True)
class Spec:
    """One option: its flag, domain, default and help; `deprecated` are old spellings that still work."""

    flag: str
    domain: Domain | None  # None: a switch (store_true)
    help: str
    default: Any = None
    deprecated: tuple[str, ...] = ()
    nargs: str | None = None
    required: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _explain_methods() -> list[str]:
    from cnnlab.explain import list_methods

    return list(list_methods())


@dataclass(frozen=True)
class Format(Choice):
    """text, json or csv; `table`, the old word for text, still works with a notice."""

    def __call__(self, text: str) -> str:
        """Return the format."""
        if text == "table":
            print("cnnlab: notice: --format table is now --format text (the old spelling goes in 0.3)", file=sys.stderr)
            return "text"
        return super().__call__(text)


FORMATS = Format(("text", "json", "csv"))
CHECKPOINTS = Choice(("auto", "best", "last", "swa"))
METHODS = Words(_explain_methods, everything="all", what="method", example="gradcam,saliency")
METHODS_OR_NONE = Words(_explain_methods, everything="all", what="method", example="gradcam,saliency", none="none")
SEED = Integer(0, 2**32 - 1)

# Each meaning that several commands share: one flag, one domain, one help text.
SHARED: dict[str, Spec] = {
    "device": Spec("--device", Device(), "auto (CUDA when available; $CNNLAB_DEVICE first), cpu, cuda or cuda:N", "auto"),
    "devices": Spec("--devices", Integer(1, 1024), "data-parallel processes (GPUs, or CPU processes with gloo) through torchrun", 1),
    "data_dir": Spec("--data-dir", Folder(), "first folder to look for data in (then $CNNLAB_DATA, ~/.cache/cnnlab)",
                     extra={"metavar": "DIR"}),
    "data": Spec("--data", Text(), "data spec: digits, mnist, fashion-mnist, cifar10, cifar100, folder:PATH, mnist-seg, ...",
                 extra={"metavar": "SPEC"}),
    "checkpoint": Spec("--checkpoint", CHECKPOINTS, "weights: auto (swa if kept, else best if it validated, else last), "
                       "best, last or swa (default: the recipe's evaluation.weights)"),
    "method": Spec("--method", METHODS, "explanation methods: a comma list, or all (see cnnlab explain --list)"),
    "method_or_none": Spec("--method", METHODS_OR_NONE, "explanation methods: a comma list, all, or none"),
    "format": Spec("--format", FORMATS, "how to print the result", "text"),
    "seed": Spec("--seed", SEED, "random seed (0 is a seed)"),
    "recipe": Spec("--recipe", Text(), "recipes/<name>.yaml or a YAML path", extra={"metavar": "RECIPE"}),
    "epochs": Spec("--epochs", Integer(1, 1_000_000), "shortcut for epochs=N"),
    "count": Spec("--count", Integer(1, 10_000_000), "test images to use"),
    "layer": Spec("--layer", Text(), "layer name (default: the model's last stage)", extra={"metavar": "LAYER"}),
    "steps": Spec("--steps", Integer(1, 1_000_000), "optimisation steps"),
    "target": Spec("--target", Integer(0, 1_000_000), "class to explain or aim at (default: the predicted class)"),
    "out_run": Spec("--out", Text(), "run directory to write (never overwritten)", extra={"metavar": "RUN"}),
    "out": Spec("--out", Text(), "folder to write into (fixed file names inside)", extra={"metavar": "FOLDER"}),
    "overrides": Spec("overrides", Override(), "recipe overrides key=value, e.g. optim.lr=0.01 augment.flip=true", nargs="*"),
}


OLD = "__old"  # an old spelling's value waits under dest + OLD; `settle` moves it where the new spelling's goes


def settle(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Move old spellings' values to their new places, and a `key=value` word given as the model to the overrides.

    An old spelling given beside its new one is an error, not a silent choice between them.
    """
    from cnnlab.errors import CnnlabError

    model = getattr(args, "model", None)
    if isinstance(model, str) and "=" in model and hasattr(args, "overrides"):
        # `cnnlab train epochs=3`: the optional model took the first override (moved before any clash is judged)
        try:
            Override()(model)
        except Fail as error:
            raise CnnlabError(str(error)) from None
        args.model, args.overrides = parser.get_default("model") if parser else None, [model, *args.overrides]
    for name, value in list(vars(args).items()):
        if not name.endswith(OLD):
            continue
        delattr(args, name)
        base = name.removesuffix(OLD)
        old, new = next(((o, n) for o, b, n in getattr(args, "_spellings", ()) if b == base), ("", ""))
        if new.startswith("-"):
            clash = given(args, new)
        else:  # the new spelling is a positional word: given when it is not its default
            clash = getattr(args, base, None) not in (None, parser.get_default(base) if parser else None)
        if clash:
            raise CnnlabError(f"{old} and {new.split(': ')[-1]} say the same thing: give only {new.split(': ')[-1]}")
        setattr(args, base, value)
    if hasattr(args, "_spellings"):
        delattr(args, "_spellings")
    refuse_ignored(args)
    return args


# Options that only some forms of a command read: (command, flag) -> (dest, the values of dest that read it, why).
# Given with any other value, the option would be ignored, so it is refused instead.
ONLY: dict[tuple[str, str], tuple[str, tuple[Any, ...], str]] = {
    ("arith", "--output-padding"): ("op", ("tconv",), "a transposed convolution's"),
    ("arith", "--ceil-mode"): ("op", ("pool",), "pooling's"),
    **{("arith", flag): ("op", ("conv", "tconv"), "a convolution's")
       for flag in ("--in-channels", "--out-channels", "--groups", "--no-bias")},
    ("rf", "--samples"): ("erf", (True,), "the effective receptive field's (--erf)"),
    ("rf", "--layer"): ("erf", (True,), "the effective receptive field's (--erf)"),
    **{("augment", flag): ("list", (False,), "a grid's, not --list's")
       for flag in ("--n", "--draws", "--seed", "--policy", "--data", "--out", "--data-dir")},
    ("explain", "--count"): ("images", (None,), "the run's test images', not --images'"),
    **{("visualize", flag): ("what", whats, f"{' and '.join(whats)}'s") for flag, whats in (
        ("--channels", ("exemplars", "dream")), ("--top", ("features", "exemplars")), ("--image", ("features", "dream")),
        ("--data", ("exemplars", "embedding", "dream")), ("--count", ("exemplars", "embedding")),
        ("--method", ("embedding",)), ("--parameterisation", ("dream",)), ("--steps", ("dream",)),
        ("--per-channel", ("dream",)), ("--diversity", ("dream",)), ("--octaves", ("dream",)), ("--size", ("dream",)),
        ("--layer", ("filters", "features", "exemplars", "dream")), ("--data-dir", ("features", "exemplars", "embedding", "dream")))},
    **{("attack", flag): ("method", ("pgd",), "PGD's (FGSM takes one step of eps)")
       for flag in ("--steps", "--step-size", "--no-random-start")},
    **{("eval", flag): ("tta_table", (True,), "the --tta-table's") for flag in ("--crop", "--scales")},
}


def combine(shortcuts: list[str], overrides: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Return shortcut flags' overrides then the user's, refusing a key set both ways (one would be dropped)."""
    from cnnlab.errors import CnnlabError

    flagged = {item.partition("=")[0]: item for item in shortcuts}
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key in flagged:
            raise CnnlabError(f"{key} is given twice, as a shortcut flag ({flagged[key]}) and as {item}: give it once")
    return (*shortcuts, *overrides)


def given(args: argparse.Namespace, flag: str) -> bool:
    """Return whether the user wrote `flag` (as `--flag value` or `--flag=value`)."""
    return any(word == flag or word.startswith(f"{flag}=") for word in getattr(args, "argv", ()))


def refuse_ignored(args: argparse.Namespace) -> None:
    """Raise one line for an option this form of the command would ignore (ONLY)."""
    from cnnlab.errors import CnnlabError

    for (command, flag), (dest, values, whose) in ONLY.items():
        if command == getattr(args, "command", None) and given(args, flag) and getattr(args, dest, None) not in values:
            raise CnnlabError(f"{flag} is {whose}: this command would ignore it, so leave it out")


class Deprecated(argparse.Action):
    """An old spelling: stores like the new one and prints one notice naming it."""

    def __init__(self, *args: Any, new: str = "", command: str = "", inner: str = "store", **kwargs: Any) -> None:
        self.new, self.command, self.inner = new, command, inner
        if inner == "store_true":
            kwargs["nargs"] = 0
        super().__init__(*args, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        """Store the value and tell the user the new spelling."""
        notice(self.command, f"{option_string} is now {self.new}")
        setattr(namespace, self.dest, True if self.inner == "store_true" else values)
        spellings = getattr(namespace, "_spellings", [])
        namespace._spellings = [*spellings, (option_string, self.dest.removesuffix(OLD), self.new)]


def out_folder(args: argparse.Namespace, suffix: str) -> tuple[str | None, str | None]:
    """Return (folder, file name) of --out; an old-spelling file path (`--out x.png`) gets its notice here."""
    from cnnlab.runs.outputs import legacy_file

    folder, legacy = legacy_file(args.out, suffix)
    if legacy is not None:
        notice(args.command, f"--out {args.out} names a file; --out now names a folder (--out {folder}); writing {args.out}")
    return folder, legacy


def notice(command: str, text: str) -> None:
    """Print one line telling the user an old spelling still works for this release."""
    print(f"cnnlab {command}: notice: {text} (the old spelling goes in 0.3)", file=sys.stderr)


def add(parser: argparse.ArgumentParser, meaning: str, *, help: str | None = None, default: Any = "__table__",  # noqa: A002
        flag: str | None = None, **overrides: Any) -> argparse.Action:
    """Add the shared option `meaning` to `parser` (a command may say more in its help, or change the default)."""
    spec = SHARED[meaning]
    return option(parser, Spec(flag or spec.flag, overrides.pop("domain", spec.domain), help or spec.help,
                               spec.default if default == "__table__" else default, overrides.pop("deprecated", spec.deprecated),
                               overrides.pop("nargs", spec.nargs), overrides.pop("required", spec.required),
                               {**spec.extra, **overrides}))


def option(parser: argparse.ArgumentParser, spec: Spec) -> argparse.Action:
    """Add one option (or positional) to `parser` from its Spec, with its old spellings."""
    command = parser.prog.split()[-1]
    kwargs: dict[str, Any] = {"help": spec.help}
    if spec.domain is None:
        kwargs["action"] = "store_true"
    else:
        kwargs.update(type=spec.domain, default=spec.default, metavar=spec.domain.metavar)
        if spec.nargs is not None:
            kwargs["nargs"] = spec.nargs
    kwargs.update(spec.extra)
    positional = not spec.flag.startswith("-")
    if not positional and spec.required:
        kwargs["required"] = True
    action = parser.add_argument(spec.flag, **kwargs)
    for old in spec.deprecated:
        extra = {} if spec.domain is None else {"type": spec.domain, "metavar": kwargs["metavar"]}
        new = spec.flag if not positional else f"a word after the command: cnnlab {command} {kwargs['metavar']}"
        parser.add_argument(old, dest=f"{action.dest}{OLD}", action=Deprecated, new=new, command=command,
                            inner="store_true" if spec.domain is None else "store", help=argparse.SUPPRESS,
                            default=argparse.SUPPRESS, **extra)
    return action


# The commands by purpose, in the order `cnnlab --help` lists them.
PURPOSES: dict[str, tuple[str, ...]] = {
    "design and inspect": ("arith", "models", "summary", "rf"),
    "data": ("augment",),
    "train": ("train", "distill", "noisy-student", "finetune", "experiment"),
    "evaluate": ("eval", "predict", "attack"),
    "look inside": ("explain", "sanity", "faithfulness", "visualize", "style"),
    "report": ("report", "compare"),
}


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, wide enough to read."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=110)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        # Defaults of None and switches say nothing useful; argparse would print "(default: None)".
        if (action.default is None or action.default is False or action.default is argparse.SUPPRESS or action.default == []
                or not action.option_strings or action.help is argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)
