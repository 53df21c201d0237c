"""The `cnnlab` command line: one module per command group; each parses, calls the library, prints.

Bad input ends in one line on stderr naming the problem and the fix, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cnnlab import __version__
from cnnlab.cli import (
    arith,
    attack,
    augment,
    data,
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
from cnnlab.cli.domains import Override
from cnnlab.cli.options import PURPOSES
from cnnlab.cli.reconcile import notice, settle
from cnnlab.errors import CnnlabError

GROUPS = (arith, inspect, train, paradigms, experiment, augment, data, evaluate, explain, attack, visualize, style, report)


def build_parser() -> Parser:
    """Return the argument parser of the `cnnlab` command, its commands listed by purpose."""
    parser = Parser(prog="cnnlab", description="Design, inspect, train and look inside CNNs.", usage="cnnlab [-h] [--version] COMMAND ...",
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND", prog="cnnlab",
                                     title="commands", help=argparse.SUPPRESS)
    for group in GROUPS:
        group.register(commands)
    helps = {action.dest: action.help for action in commands._choices_actions}
    listed = [name for names in PURPOSES.values() for name in names]
    assert sorted(listed) == sorted(helps), "every command has one purpose in cli.options.PURPOSES"
    parser.epilog = "\n\n".join(f"{purpose}:\n" + "\n".join(f"  {name:<15} {helps[name]}" for name in names)
                                  for purpose, names in PURPOSES.items())
    parser.epilog += "\n\n`cnnlab COMMAND --help` shows a command's options and their defaults."
    return parser


def _command_parser(parser: Parser, command: str) -> argparse.ArgumentParser:
    """Return the parser of one command."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]


def _old_order(argv: list[str]) -> list[str]:
    """Return argv with `visualize RUN WHAT` turned into `visualize WHAT RUN`, the verb first (with a notice)."""
    from cnnlab.cli.visualize import WHATS

    if len(argv) < 3 or argv[0] != "visualize" or argv[1] in WHATS or argv[1].startswith("-"):
        return argv
    at = next((i for i, word in enumerate(argv[2:], 2) if word in WHATS and not argv[i - 1].startswith("-")), None)
    if at is None:
        return argv
    notice("visualize", f"visualize {argv[1]} {argv[at]} is now visualize {argv[at]} {argv[1]}")
    return [argv[0], argv[at], *argv[1:at], *argv[at + 1:]]


def parse(parser: Parser, words: list[str]) -> argparse.Namespace:
    """Return the parsed and checked arguments: every option typed by its domain, or exit 2 with one line."""
    args, extra = parser.parse_known_args(words)
    args.argv = words
    try:
        # argparse hands `key=value` words that follow an option to nobody; they are recipe overrides.
        if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *(Override()(e) for e in extra)]
        elif extra:
            _command_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    except argparse.ArgumentTypeError as error:
        _command_parser(parser, args.command).error(f"argument overrides: {error}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    words = _old_order(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    try:
        args = parse(parser, words)
    except SystemExit as stop:  # a usage error (one line, already printed), --help or --version
        return stop.code if isinstance(stop.code, int) else 2
    try:
        return args.func(settle(args, _command_parser(parser, args.command)))
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


__all__ = ["build_parser", "main", "parse", "parse_ints"]
