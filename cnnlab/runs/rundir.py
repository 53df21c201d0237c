"""The run directory: the contract between `cnnlab train` and every later command.

Files are written to a temporary sibling and renamed into place, so a killed process leaves
either the previous complete file or the new complete one, never half of one (checkpoints:
cnnlab.runs.checkpoint).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError


def new_run_dir(path: str | Path, *, exist_ok_suffix: bool = False) -> Path:
    """Return a fresh run directory at `path` (or at path-2, path-3... with exist_ok_suffix)."""
    base = Path(path)
    if base.exists() and not base.is_dir():
        raise CnnlabError(f"run directory {base} is an existing file: choose another --out")
    candidate, counter = base, 1
    while candidate.exists() and any(candidate.iterdir()):
        if not exist_ok_suffix:
            raise CnnlabError(
                f"run directory {candidate} already exists and is not empty: choose another --out"
            )
        counter += 1
        candidate = base.with_name(f"{base.name}-{counter}")
    candidate.mkdir(parents=True, exist_ok=True)
    return candidate


def write_json(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` atomically."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.chmod(handle.name, 0o644)  # temporary files are private; a run directory is for reading
    os.replace(handle.name, path)


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Append one row (column -> value) to a CSV file, writing the header on first use."""
    is_new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if is_new:
            writer.writeheader()
        writer.writerow(row)
