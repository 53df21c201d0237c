"""After parsing: old spellings moved to their new places, and options this form of a command would ignore refused.

An old spelling (`Deprecated`) still works for this release with one notice; `settle` moves its
value where the new spelling's goes, refusing the two given together, then refuses any option in
`ONLY` that the form given would ignore. `combine` joins shortcut flags' overrides to the user's.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cnnlab.cli.domains import Fail, Override

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
