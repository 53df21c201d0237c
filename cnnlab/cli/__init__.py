"""The `cnnlab` command line: one module per command group; each parses, calls the library, prints.

Bad input ends in one line on stderr naming the problem and the fix, with exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from cnnlab import __version__
from cnnlab.cli import (
    arith,
    attack,
    augment,
    evaluate,
    experiment,
    explain,
    inspect,
    paradigms,
    report,
    style,
    train,
    visualize,
)
from cnnlab.cli.common import Parser, parse_ints
from cnnlab.errors import CnnlabError

GROUPS = (arith, inspect, train, paradigms, experiment, augment, evaluate, explain, attack, visualize, style, report)


def build_parser() -> Parser:
    """Return the argument parser of the `cnnlab` command."""
    parser = Parser(prog="cnnlab", description="Design, inspect, train and look inside CNNs.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        group.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    # argparse hands `key=value` words that follow an option to nobody; they are recipe overrides.
    if extra and getattr(args, "command", None) in ("train", "distill", "noisy-student", "finetune") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except CnnlabError as error:
        print(f"cnnlab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a read-only or full disk, a path below a file: the system's words, one line
        where = f" {error.filename}" if error.filename else ""
        print(f"cnnlab {args.command}: error: cannot use{where} ({error.strerror or error}): "
              "choose a writable place with room (--out), or fix the permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (`| head`) left early: not an error of ours; silence the flush at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


__all__ = ["build_parser", "main", "parse_ints"]
