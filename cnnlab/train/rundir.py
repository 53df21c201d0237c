"""The run directory: the contract between `cnnlab train` and every later command.

Files are written to a temporary sibling and renamed into place, so a killed process leaves
either the previous complete file or the new complete one, never half of one.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

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


def append_metrics(path: Path, row: Any) -> None:
    """Append one dataclass row to a CSV file, writing the header on first use."""
    is_new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(row)])
        if is_new:
            writer.writeheader()
        writer.writerow(asdict(row))


def save_checkpoint(directory: Path, model: nn.Module, state: dict[str, Any]) -> None:
    """Write model.safetensors and state.json into `directory`, replacing it whole."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    staging.chmod(0o755)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(staging / "model.safetensors"))
    (staging / "model.safetensors").chmod(0o644)
    write_json(staging / "state.json", state)
    if directory.exists():
        retired = directory.with_name(f".{directory.name}-retired")
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(directory, retired)
        os.replace(staging, directory)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, directory)


def load_weights(directory: Path, model: nn.Module) -> None:
    """Load model.safetensors from a checkpoint directory into `model` (no pickle involved)."""
    path = directory / "model.safetensors"
    if not path.is_file():
        raise CnnlabError(f"no model.safetensors in {directory}: is it a checkpoint directory?")
    model.load_state_dict(load_file(str(path)))
