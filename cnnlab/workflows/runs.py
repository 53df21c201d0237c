"""One run of many: kept when it finished, resumed when it was interrupted, trained afresh otherwise."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from cnnlab.train.run import train_run
from cnnlab.train.summary import read_summary


def train_or_resume(run: Path, *, model: str, data: str, recipe_name: str | None, overrides: tuple[str, ...],
                    data_dir: str | None = None, device: str = "auto", console: Console | None = None) -> dict[str, Any]:
    """Return the summary of the run at `run`: kept when finished, resumed when interrupted, else trained afresh."""
    summary = read_summary(run)
    if summary is not None:
        return summary
    if (run / "data.json").is_file():  # interrupted: continue it
        return train_run(resume=str(run), data_dir=data_dir, console=console, device=device)
    if run.exists():
        shutil.rmtree(run)  # stopped before training began: nothing to keep
    return train_run(model=model, data=data, out=str(run), data_dir=data_dir, recipe_name=recipe_name,
                     overrides=overrides, console=console, device=device)
