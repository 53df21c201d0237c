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
        kwargs.setdefault("allow_abbrev", False)  # a shortened flag would slip past the checks that read the words given
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        """Exit with status 2 and one line."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_ints(text: str, what: str, example: str = "3x224x224") -> tuple[int, ...]:
    """Return the integers of 'AxBxC' (or a single 'A'), or raise naming the expected form (cli.numeric.Sizes)."""
    from cnnlab.cli.domains import Fail
    from cnnlab.cli.numeric import Sizes

    try:
        return Sizes(example, parts=())(text)
    except Fail as error:
        raise CnnlabError(f"{what} {error}") from None


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
