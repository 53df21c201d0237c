"""One mechanism checks every option of every command: the walk, the grammar table, and --help.

The walk feeds each option values outside its domain and at its edges, in-process, stopping after
validation (nothing runs): outside values are one line and exit 2, edge values parse.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from cnnlab.cli import build_parser, parse
from cnnlab.cli.domains import Domain, Words
from cnnlab.cli.numeric import ImageSides
from cnnlab.cli.options import PURPOSES, SHARED
from cnnlab.cli.reconcile import OLD, Deprecated

PARSER = build_parser()
COMMANDS: dict[str, argparse.ArgumentParser] = next(
    a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices
OLD_SPELLINGS = {"--methods": "--method", "--explain": "--method", "--student": "MODEL", "--student-model": "MODEL",
                 "--model": "MODEL", "--channel": "--channels"}
EXPLAINING = ("explain", "sanity", "faithfulness", "report")  # --method names explanation methods here
BUILDS_A_MODEL = ("train", "distill", "noisy-student", "summary", "rf")  # finetune: SOURCE, then MODEL


def _actions(command: str) -> Iterator[argparse.Action]:
    for action in COMMANDS[command]._actions:
        if not isinstance(action, argparse._HelpAction):
            yield action


def _filler(action: argparse.Action) -> list[str]:
    """Return words that satisfy a required option or positional."""
    domain = action.type
    word = next(iter(domain.edges()), "x") if isinstance(domain, Domain) else "x"
    if isinstance(domain, ImageSides) or action.dest == "input":
        word = "3x8x8" if action.dest == "input" else word
    return [word]


def _required(command: str, skip: argparse.Action) -> list[str]:
    """Return argv after the command that fills every required option and positional other than `skip`."""
    words: list[str] = []
    for action in _actions(command):
        if action is skip:
            continue
        if not action.option_strings and action.nargs not in ("?", "*"):
            words += _filler(action)
        elif action.option_strings and action.required:
            words += [action.option_strings[0], *_filler(action)]
    return words


def _walked() -> list[tuple[str, argparse.Action]]:
    return [(command, action) for command in COMMANDS for action in _actions(command)
            if isinstance(action.type, Domain) and not isinstance(action, Deprecated)]


WALKED = _walked()


def test_the_walk_covers_every_option() -> None:
    """Every option and positional that takes a value has a domain; the CLI has about 185 options."""
    untyped = [(c, a.dest) for c in COMMANDS for a in _actions(c)
               if a.nargs != 0 and not isinstance(a, argparse._VersionAction) and not isinstance(a.type, Domain)]
    assert untyped == []
    flags = sum(1 for c in COMMANDS for a in _actions(c) if a.option_strings and a.help is not argparse.SUPPRESS)
    assert flags >= 180, flags
    assert len(WALKED) >= 150, len(WALKED)


@pytest.mark.parametrize("command, action", WALKED, ids=[f"{c}:{a.option_strings[0] if a.option_strings else a.dest}"
                                                         for c, a in WALKED])
def test_values_outside_a_domain_are_one_line_and_exit_2(capsys, command: str, action: argparse.Action) -> None:
    rest = _required(command, action)
    for bad in action.type.outside():
        if action.option_strings:
            argv = [command, *rest, f"{action.option_strings[0]}={bad}"]
        elif action.nargs in ("?", "*"):
            continue  # an optional positional: an outside word would be taken by the next one
        else:
            argv = [command, bad, *rest] if action is next(a for a in _actions(command) if not a.option_strings) else None
            if argv is None:
                continue  # positionals after the first are covered as the first of their command in the README tests
        with pytest.raises(SystemExit) as stop:
            parse(build_parser(), argv)
        err = capsys.readouterr().err
        assert stop.value.code == 2, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "error:" in err, (argv, err)
        assert "Traceback" not in err


@pytest.mark.parametrize("command, action", WALKED, ids=[f"{c}:{a.option_strings[0] if a.option_strings else a.dest}"
                                                         for c, a in WALKED])
def test_values_at_the_edge_of_a_domain_are_accepted(capsys, command: str, action: argparse.Action) -> None:
    rest = _required(command, action)
    for edge in action.type.edges():
        if not action.option_strings:
            continue  # positionals are filled with their edges by _required for every other option
        args = parse(build_parser(), [command, *rest, f"{action.option_strings[0]}={edge}"])
        assert getattr(args, action.dest) is not None


def test_memory_bound_shows_its_estimate(capsys) -> None:
    with pytest.raises(SystemExit):
        parse(build_parser(), ["visualize", "dream", "run", "--size", "100000"])
    err = capsys.readouterr().err
    assert "a side of 100000 px needs about" in err and "TB" in err and "available" in err
    with pytest.raises(SystemExit):
        parse(build_parser(), ["eval", "run", "--tta-table", "--crop", "8", "--scales", "8,5000"])
    err = capsys.readouterr().err
    assert "a side of 5000 px needs about" in err and "choose a smaller size" in err
    assert parse(build_parser(), ["eval", "run", "--tta-table", "--crop", "8", "--scales", "8,32"]).scales == (8, 32)


@pytest.mark.parametrize("command, argv", [
    ("visualize", ["exemplars", "run", "--channels", "5-2"]),
    ("visualize", ["features", "run", "--top", "0"]),
    ("visualize", ["exemplars", "run", "--count", "0"]),
    ("visualize", ["embedding", "run", "--count", "-5"]),
    ("visualize", ["dream", "run", "--steps", "0"]),
    ("visualize", ["dream", "run", "--diversity", "nan"]),
    ("attack", ["run", "--eps", "nan"]),
    ("attack", ["run", "--eps-list", "0,nan"]),
    ("faithfulness", ["run", "--method", ""]),
    ("style", ["a.png", "b.png", "--size", "0"]),
    ("style", ["a.png", "b.png", "--size", "1"]),
    ("style", ["a.png", "b.png", "--steps", "0"]),
    ("style", ["a.png", "b.png", "--style-weight", "nan"]),
    ("explain", ["run", "--option", "steps"]),
])
def test_the_cases_found_are_refused_at_parsing(capsys, command: str, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        parse(build_parser(), [command, *argv])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.strip().splitlines()) == 1, err


def test_zero_is_a_seed_and_a_weight_decay() -> None:
    from cnnlab.cli.reconcile import settle

    args = settle(parse(build_parser(), ["train", "--seed", "0", "optim.weight_decay=0"]))
    assert args.seed == 0 and args.overrides == ["optim.weight_decay=0"]


def test_shared_meanings_take_one_flag_domain_and_help() -> None:
    """The grammar table: each shared flag has one domain and help wherever it appears."""
    by_flag = {flag: [spec for spec in SHARED.values() if spec.flag == flag] for flag in {s.flag for s in SHARED.values()}}
    for command in COMMANDS:
        for action in _actions(command):
            if isinstance(action, Deprecated) or not action.option_strings:
                continue
            flag = action.option_strings[0]
            if flag in OLD_SPELLINGS:
                pytest.fail(f"cnnlab {command} offers {flag}: its new spelling is {OLD_SPELLINGS[flag]}")
            if flag == "--method" and command not in EXPLAINING:
                continue  # attack's fgsm/pgd and embedding's pca/tsne: other meanings, local to those commands
            if flag in by_flag:
                assert any(action.type == spec.domain for spec in by_flag[flag]), (command, flag, action.type)
    for command in EXPLAINING:
        assert COMMANDS[command]._option_string_actions["--method"].type in (SHARED["method"].domain,) or isinstance(
            COMMANDS[command]._option_string_actions["--method"].type, Words)
    for command in BUILDS_A_MODEL:
        assert any(a.dest == "model" and not a.option_strings for a in _actions(command)), command
    assert any(a.dest == "model" and not a.option_strings for a in _actions("finetune"))
    for command in COMMANDS:
        data = COMMANDS[command]._option_string_actions.get("--data")
        assert data is None or data.option_strings == ["--data"]
        for flag in ("--format", "--checkpoint"):
            if flag in COMMANDS[command]._option_string_actions:
                assert COMMANDS[command]._option_string_actions[flag].type == SHARED[flag.strip("-")].domain


def test_old_spellings_still_work_with_a_notice(capsys) -> None:
    cases = [
        (["faithfulness", "run", "--methods", "saliency"], "method", ("saliency",), "--methods is now --method"),
        (["report", "run", "--explain", "none"], "method", (), "--explain is now --method"),
        (["distill", "--teacher", "t", "--student", "small_cnn"], "model", "small_cnn", "--student is now a word after the command: cnnlab distill MODEL"),
        (["noisy-student", "--data", "digits", "--labelled-fraction", "0.1", "--student-model", "lenet5"], "model", "lenet5",
         "--student-model is now"),
        (["finetune", "source", "--data", "digits", "--model", "lenet5"], "model", "lenet5", "--model is now"),
        (["visualize", "dream", "run", "--channel", "1"], "channels", (1,), "--channel is now --channels"),
        (["models", "--format", "table"], "format", "text", "--format table is now --format text"),
    ]
    from cnnlab.cli.reconcile import settle

    for argv, dest, value, words in cases:
        parser = build_parser()
        args = settle(parse(parser, argv), COMMANDS[argv[0]])
        err = capsys.readouterr().err
        assert getattr(args, dest) == value, argv
        assert words in err and "notice" in err and len(err.strip().splitlines()) == 1, err
        assert not any(name.endswith(OLD) for name in vars(args))


def test_visualize_takes_the_verb_first_and_the_old_order_with_a_notice(capsys) -> None:
    from cnnlab.cli import _old_order

    assert _old_order(["visualize", "runs/demo", "filters"]) == ["visualize", "filters", "runs/demo"]
    assert "visualize runs/demo filters is now visualize filters runs/demo" in capsys.readouterr().err
    assert _old_order(["visualize", "filters", "runs/demo"]) == ["visualize", "filters", "runs/demo"]


def test_every_help_shows_each_option_with_help_and_defaults() -> None:
    top = PARSER.format_help()
    for purpose, names in PURPOSES.items():
        assert f"{purpose}:" in top and all(f"  {name} " in top for name in names)
    for command, parser in COMMANDS.items():
        text = parser.format_help()
        for action in _actions(command):
            if action.help is argparse.SUPPRESS:
                assert isinstance(action, Deprecated) or action.dest.endswith("_positional"), (command, action.dest)
                continue
            assert action.help and action.help.strip(), (command, action.dest)
            if action.option_strings:
                assert action.option_strings[0] in text, (command, action.option_strings)
                shown = action.default not in (None, False, []) and action.default is not argparse.SUPPRESS
                assert ("(default: " in text) or not shown, (command, action.dest)
