"""Deck 004's table: how crops, scales and model averaging add up, from one set of runs in one pass per view.

Each run's class probabilities on the test split are computed once per view setting (one crop,
ten crops, multi-scale); the single-model rows are the mean over the runs, the N-model rows the
ensemble of all of them (the mean of their probabilities). One run gives the single-model rows only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnlab.data.tta import TTA, Views
from cnnlab.errors import CnnlabError
from cnnlab.runs.load import load_run
from cnnlab.train.evaluation import check_views, scored_batches, view_logits
from cnnlab.workflows.ensemble import check_members, check_test_splits


def default_scales(crop: int, size: int) -> tuple[int, ...]:
    """Return multi-scale's sizes: the training crop, the whole image, and as much larger again."""
    return tuple(sorted({crop, size, size + (size - crop)}))


@torch.no_grad()
def tta_table(paths: list[str | Path], data: str | None = None, data_dir: str | None = None,
              crop: int | None = None, scales: tuple[int, ...] = (), device: str | torch.device = "cpu") -> dict[str, Any]:
    """Return the test top-1 of 1 and N models with 1 crop, 10 crops and multi-scale, as rows of a table."""
    if not paths:
        raise CnnlabError("the table scores runs: give one run directory, or several for the N-model rows")
    runs = [load_run(path, device=device) for path in paths]
    check_members(runs, least=1)
    check_test_splits(runs, data_dir, data)
    crop = crop or runs[0].recipe.evaluation.crop
    if crop is None:
        raise CnnlabError("the table compares crops: give --crop (the size the runs trained at, e.g. 28 of 32) "
                          "or train with evaluation.crop")
    test = runs[0].test_split(data_dir, data)
    size = runs[0].info.input_size[-1]
    scales = scales or runs[0].recipe.evaluation.scales or default_scales(crop, size)
    settings = {"1 crop": Views(TTA.NONE, crop), "10 crops": Views(TTA.TEN_CROP, crop),
                "multi-scale": Views(TTA.MULTI_SCALE, None, tuple(scales))}
    for run in runs:
        for views in settings.values():
            check_views(run.model, run.info.input_size, views)
    target = next(iter(runs[0].model.parameters())).device
    probabilities = {name: [[] for _ in runs] for name in settings}
    labels = []
    for images, y in scored_batches(test, min(r.recipe.evaluation.batch_size for r in runs), target):
        labels.append(y)
        for i, run in enumerate(runs):
            x = run.normalisation(images)
            for name, views in settings.items():
                probabilities[name][i].append(view_logits(run.model, x, views).softmax(dim=1))
    truth = torch.cat(labels)
    rows = []
    for name in settings:
        per_run = [torch.cat(parts) for parts in probabilities[name]]
        singles = [(p.argmax(1) == truth).float().mean().item() for p in per_run]
        rows.append({"models": 1, "views": name, "top1": sum(singles) / len(singles),
                     "min": min(singles), "max": max(singles)})
        if len(runs) == 1:
            continue
        ensemble = torch.stack(per_run).mean(0)
        rows.append({"models": len(runs), "views": name, "top1": (ensemble.argmax(1) == truth).float().mean().item()})
    return {"runs": [str(r.path) for r in runs], "data": data or runs[0].info.spec, "images": len(truth),
            "crop": crop, "scales": list(scales), "rows": rows}
