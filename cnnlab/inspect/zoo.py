"""The zoo as a table: name, family, paper, year, parameters and GMACs at each model's own input.

Counting all of the zoo on the meta device takes seconds, so the counts are checked into
`zoo_counts.json` beside this file, keyed by name and input size; a test recounts every model
and compares, so the file cannot drift. A model registered later, or one whose input size
changed, is counted on the spot. Regenerate with `python -m cnnlab.inspect.zoo`.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from cnnlab.models import list_models, model_info

COUNTS_FILE = Path(__file__).with_name("zoo_counts.json")


@cache
def _stored_counts() -> dict[str, dict[str, Any]]:
    try:
        return json.loads(COUNTS_FILE.read_text())
    except (OSError, ValueError):  # a missing or damaged file only costs time: count instead
        return {}


def count_model(name: str) -> dict[str, Any]:
    """Return {"input_size", "params", "macs"} of a zoo model, counted on the meta device."""
    from cnnlab.inspect.summary import summary

    size = model_info(name).input_size
    result = summary(name, size)
    return {"input_size": list(size), "params": result.total_params, "macs": result.total_macs}


def model_counts(name: str) -> dict[str, Any]:
    """Return the counts of a zoo model: from the checked-in table when it matches, else counted."""
    stored = _stored_counts().get(name)
    if stored is not None and stored.get("input_size") == list(model_info(name).input_size):
        return stored
    return count_model(name)


def model_table(pattern: str | None = None) -> list[dict[str, Any]]:
    """Return one row per zoo model (filtered by a shell pattern) with its parameters and MACs."""
    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        counts = model_counts(name)
        rows.append({
            "name": name,
            "family": info.family,
            "paper": info.paper,
            "year": info.year,
            "params": counts["params"],
            "macs": counts["macs"],
            "gmacs": round(counts["macs"] / 1e9, 6),  # LeNet-5 has 0.000416 G
            "input_size": list(info.input_size),
            "small_input": info.small_input,
            "classifier": info.classifier,
            "torchvision": info.torchvision,
        })
    return rows


def write_counts(path: Path = COUNTS_FILE) -> dict[str, dict[str, Any]]:
    """Recount every zoo model, write the table to `path` and return it."""
    counts = {name: count_model(name) for name in list_models()}
    path.write_text(json.dumps(counts, indent=1, sort_keys=True) + "\n")
    return counts


if __name__ == "__main__":
    written = write_counts(Path(sys.argv[1]) if len(sys.argv) > 1 else COUNTS_FILE)
    print(f"wrote the counts of {len(written)} models")
