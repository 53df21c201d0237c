"""summary.json: a finished run's test figures, written once training ends, and read back by whatever needs them.

The test figures come from the same function as `cnnlab eval` (cnnlab.train.evaluation), on
the weights load_run would choose, so the two agree to the last digit; `weights` records those
weights' digest, which load_run checks before trusting the figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console

from cnnlab.data.loader import StreamedImages
from cnnlab.devices import device_description
from cnnlab.errors import CnnlabError
from cnnlab.runs.load import load_run
from cnnlab.runs.rundir import write_json
from cnnlab.train.evaluation import score_run
from cnnlab.train.paradigms.distill import TEACHERS

if TYPE_CHECKING:  # readers of summary.json (report, workflows) need not import the engine
    from cnnlab.train.engine import Trainer
    from cnnlab.train.parts import Parts

SUMMARY = "summary.json"


def read_summary(run: Path) -> dict[str, Any] | None:
    """Return the run's summary.json, None while it has none (not finished); one line when it is damaged."""
    path = run / SUMMARY
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:  # not JSON, or not text at all
        raise CnnlabError(f"{path} is not valid JSON ({error}): the run directory is damaged") from None


def finish_run(run: Path, parts: Parts, trainer: Trainer, model: str, device: torch.device,
               console: Console) -> dict[str, Any]:
    """Score the run as `cnnlab eval` does, write summary.json, print the headline; return the summary."""
    state = trainer.state
    seconds = state.seconds  # every segment of a resumed run, not only the last
    scored = load_run(run, device=device, verify=False)  # summary.json is about to describe these weights
    scores = score_run(scored, parts.test)
    skipped = parts.splits.skipped + sum(p.skipped for p in (parts.train, parts.val, parts.test)
                                         if isinstance(p, StreamedImages))
    headline = {k: scores[k] for k in trainer.task.headline}
    result = {
        "run": str(run),
        "model": model,
        **{f"best_val_{k}": v for k, v in state.best.items() if k != "loss"},
        "best_epoch": state.best_epoch,
        **{f"test_{k}": v for k, v in headline.items()},
        "test_loss": scores["loss"],
        "weights": scores["weights"],  # with the weights' digest, which load_run checks
        "tta": scores["tta"],
        "epochs": state.epoch,
        "training_seconds": round(seconds, 3),
        "device": device_description(device),
        "test_images": len(parts.test),
        "stop_reason": state.stop_reason,
        "skipped_images": skipped,
    }
    if (run / TEACHERS).is_file():
        result["teachers"] = json.loads((run / TEACHERS).read_text())
    write_json(run / SUMMARY, result)
    if skipped:
        console.print(f"skipped {skipped} unreadable images")
    console.print(f"test {trainer.task.describe(scores)} on {scores['images']} held-out images after {state.epoch} epochs "
                  f"({seconds:.1f} s, {scores['weights']['checkpoint']} weights); run directory: {run}")
    return result
