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


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path` atomically: a kill leaves the old file or the new one, never half."""
    if path.is_dir():
        raise CnnlabError(f"{path} is a folder: give a file path to write")
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}-", suffix=".tmp", delete=False) as handle:
        temporary = handle.name
        try:
            handle.write(text)
        except BaseException:
            handle.close()
            os.unlink(temporary)
            raise
    try:
        os.chmod(temporary, 0o644)  # temporary files are private; a run directory is for reading
        os.replace(temporary, path)
    except OSError as error:  # the error would name the temporary file, which is gone: name the target
        os.unlink(temporary)
        raise CnnlabError(f"cannot write {path} ({error.strerror or error}): choose a writable place") from None
    except BaseException:
        os.unlink(temporary)
        raise


def write_json(path: Path, data: Any) -> None:
    """Write `data` as JSON to `path` atomically."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def append_metrics(path: Path, row: dict[str, Any]) -> None:
    """Append one row (column -> value) to a CSV file, writing the header on first use."""
    is_new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if is_new:
            writer.writeheader()
        writer.writerow(row)


def mend_metrics(path: Path, epoch: int, last_row: dict[str, Any]) -> None:
    """Make metrics.csv hold exactly the rows of epochs 1..epoch (a checkpoint's), from the checkpoint's last row if missing."""
    rows = list(csv.DictReader(path.open(newline=""))) if path.is_file() else []
    by_epoch: dict[int, dict[str, str]] = {}
    for row in rows:  # a repeated epoch (a run resumed by 0.1.0) keeps its later row: the kept weights'
        if row.get("epoch", "").isdigit() and int(row["epoch"]) <= epoch:
            by_epoch[int(row["epoch"])] = row
    kept = [by_epoch[e] for e in sorted(by_epoch)]
    if epoch and last_row and (not kept or int(kept[-1]["epoch"]) < epoch):
        kept.append({k: str(v) for k, v in last_row.items()})  # killed between the checkpoint and its row
    if kept == rows:
        return
    if not kept:
        path.unlink(missing_ok=True)  # the next row writes the header again
        return
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(kept[0]))
        writer.writeheader()
        writer.writerows(kept)
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Return metrics.csv's rows as numbers (epoch an int), or [] when the file is missing."""
    if not path.is_file():
        return []
    rows = []
    for row in csv.DictReader(path.open(newline="")):
        try:
            rows.append({k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v not in (None, "")})
        except ValueError:
            raise CnnlabError(f"{path} holds a value that is not a number ({row}): the run directory is damaged") from None
    return rows
