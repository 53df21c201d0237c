"""Ensembles of runs: the mean of their class probabilities, scored with the one tally every score uses.

Each member keeps its own chosen weights, normalisation and test-time augmentation; the
ensemble's logits are the log of the mean probability, so its arg-max is the averaged vote and
its loss the negative log-likelihood of that average (deck 004's model averaging).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnlab.data.collection import Images
from cnnlab.data.loader import StreamedImages
from cnnlab.data.sources import ImageSet
from cnnlab.errors import CnnlabError
from cnnlab.runs.info import TaskName
from cnnlab.runs.load import Run, load_run
from cnnlab.train.evaluation import scored_batches, view_logits
from cnnlab.train.paradigms.snapshot import snapshots_of
from cnnlab.train.tasks import task_for

SEEDED_TEST_SPLITS = ("digits", "folder:")  # data whose held-out part a run's seed draws


def check_members(runs: list[Run], least: int = 2) -> None:
    """Raise one line unless there are `least` runs and every one classifies the same classes from the same input."""
    if len(runs) < least:
        raise CnnlabError("an ensemble needs at least two runs: give two or more run directories")
    if len({(str(r.path.resolve()), r.checkpoint) for r in runs}) < len(runs):
        raise CnnlabError("a run is named twice: give each member of the ensemble once")
    first = runs[0]
    for run in runs:
        if run.info.task is not TaskName.CLASSIFICATION:
            raise CnnlabError(f"{run.path} is a {run.info.task.value} run: ensembles average classifiers' probabilities")
        ours = (run.classes, run.info.input_size, run.info.resize, run.info.pad)
        theirs = (first.classes, first.info.input_size, first.info.resize, first.info.pad)
        if ours != theirs:
            raise CnnlabError(f"{run.path} was trained on other classes or another input than {first.path}: "
                              "ensemble runs of the same data, size and padding")


def check_test_splits(runs: list[Run], data_dir: str | Path | None, spec: str | None) -> None:
    """Raise one line when members hold out different test images (digits and folders draw them by seed)."""
    spec = spec or runs[0].info.spec
    if len({r.info.seed for r in runs}) == 1 or not spec.startswith(SEEDED_TEST_SPLITS):
        return
    splits = [r.test_split(data_dir, spec) for r in runs]
    for run, part in zip(runs[1:], splits[1:], strict=True):
        same = len(part) == len(splits[0]) and torch.equal(part.labels, splits[0].labels)
        if same and isinstance(part, ImageSet) and isinstance(splits[0], ImageSet):
            same = torch.equal(part.images, splits[0].images)
        elif same and isinstance(part, StreamedImages) and isinstance(splits[0], StreamedImages):
            same = part.source == splits[0].source if isinstance(part.source, tuple) else torch.equal(part.source, splits[0].source)
        if not same:
            raise CnnlabError(f"{run.path} and {runs[0].path} hold out different test images ({spec} draws them by the "
                              "run's seed, and theirs differ): ensemble runs of one seed, or data with a fixed test split")


@torch.no_grad()
def score_ensemble(runs: list[Run], test: Images, batch_size: int = 512) -> dict[str, Any]:
    """Return the ensemble's test figures (as eval.json) with each member's top-1, top-5 and loss."""
    check_members(runs)
    device = next(runs[0].model.parameters()).device
    task = task_for(TaskName.CLASSIFICATION, len(runs[0].classes))
    ensemble, members = task.tally(device), [task.tally(device) for _ in runs]
    for images, y in scored_batches(test, batch_size, device):
        probabilities = torch.zeros(len(y), len(runs[0].classes), device=device)
        for run, tally in zip(runs, members, strict=True):
            logits = view_logits(run.model, run.normalisation(images), run.recipe.evaluation.views())
            tally.add(logits, y)
            probabilities += logits.softmax(dim=1)
        ensemble.add((probabilities / len(runs)).clamp_min(1e-12).log(), y)
    scores = [t.result() for t in members]
    return {
        "runs": [str(r.path) for r in runs], "data": runs[0].info.spec, "task": TaskName.CLASSIFICATION.value,
        "images": ensemble.images, "combine": "mean probability",
        "members": [{"run": str(r.path), "checkpoint": r.checkpoint, "weights": r.weights_used(), "tta": r.recipe.evaluation.tta.value,
                     "top1": s["acc"], "top5": s["top5"], "loss": s["loss"]} for r, s in zip(runs, scores, strict=True)],
        "best_member_top1": max(s["acc"] for s in scores),
        **ensemble.report(runs[0].classes),
    }


def evaluate_ensemble(paths: list[str | Path], data: str | None = None, data_dir: str | None = None,
                      checkpoint: str | None = None, device: str | torch.device = "cpu",
                      snapshots: bool = False) -> dict[str, Any]:
    """Return the figures of the ensemble of the runs at `paths` (or of all their snapshots) on the first run's test split."""
    if snapshots:
        names = {str(path): snapshots_of(Path(path)) for path in paths}
        for path, found in names.items():
            if not found:
                raise CnnlabError(f"{path} holds no snapshots: train it with schedule.name=cyclic schedule.cycles=M "
                                  "paradigm.snapshot.enabled=true")
        runs = [load_run(path, name, device=device) for path, found in names.items() for name in found]
    else:
        runs = [load_run(path, checkpoint, device=device) for path in paths]
    check_members(runs)
    check_test_splits(runs, data_dir, data)
    batch_size = min(r.recipe.evaluation.batch_size for r in runs)
    result = score_ensemble(runs, runs[0].test_split(data_dir, data), batch_size)
    return {**result, "data": data or result["data"]}
