"""`cnnlab report RUN`: one self-contained HTML page of a trained classification or detection run.

The page's per-class figures and its mistakes come from the one scoring path (`score_run`, as
`cnnlab eval`); its headline test figures are summary.json's, printed as written there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data.loader import sample_indices
from cnnlab.errors import CnnlabError
from cnnlab.explain import PixelModel, attribute, default_layer
from cnnlab.explain.pictures.exemplars import batches_of, crop, top_exemplars
from cnnlab.explain.pictures.filters import filter_grid, tile
from cnnlab.inspect.summary import summary
from cnnlab.report import plots
from cnnlab.report.detection import detection_section, pr_curves
from cnnlab.report.facts import RunFacts, read_facts
from cnnlab.report.page import render_page
from cnnlab.runs.info import TaskName
from cnnlab.runs.load import Run, load_run, require_trained
from cnnlab.runs.rundir import write_text
from cnnlab.train.evaluation import score_tally

DEFAULT_METHODS = ("gradcam", "integrated_gradients")
SECTIONS = ("run", "layers", "curves", "per-class", "mistakes", "inside", "health")
DETECTION_SECTIONS = ("run", "layers", "curves", "detection", "health")


def _layer_table(run: Run) -> dict[str, Any]:
    """Return the summary rows and totals of the run's model at its input size (the model itself untouched)."""
    table = summary(run.model, tuple(run.info.input_size))
    rows = [{
        "name": r.name, "type": r.type, "output": "x".join(map(str, r.output_shape)), "params": r.params, "macs": r.macs,
        "activation_bytes": r.activation_elements * table.dtype_bytes,
        "field": "x".join(map(str, r.receptive_field)) + (" g" if r.receptive_field_global else "") if r.receptive_field else "",
    } for r in table.layers]
    return {"rows": rows, "params": table.total_params, "macs": table.total_macs, "activation_bytes": table.activation_bytes}


def _per_class(scores: dict[str, Any], classes: Sequence[str]) -> list[dict[str, Any]]:
    """Return one row per class: images, accuracy (recall) and precision."""
    matrix = scores["confusion_matrix"]
    return [{"name": name, "images": sum(matrix[i]), "accuracy": scores["per_class_accuracy"][name],
             "precision": scores["per_class_precision"][name]} for i, name in enumerate(classes)]


def _mistakes(run: Run, images: torch.Tensor | None, scores: dict[str, Any], methods: Sequence[str], count: int) -> list[dict[str, Any]]:
    """Return the most confident mistakes, each with a picture of the image and its explanation maps for the predicted class."""
    worst = scores["worst_mistakes"][:count]
    if images is None or not worst:
        return [dict(m, picture=None) for m in worst]
    norm = run.normalisation
    device = next(run.model.parameters()).device
    model = PixelModel(run.model, norm.mean, norm.std).to(device)  # its mean/std buffers too
    pictures = images[[m["index"] for m in worst]].float().to(device) / 255
    targets = torch.tensor([run.classes.index(m["predicted"]) for m in worst], device=pictures.device)
    maps = {method: attribute(model, pictures, method, targets).heatmap() for method in methods}
    return [dict(m, picture=plots.heat_strip(pictures[i], {k: v[i] for k, v in maps.items()},
                                             f"true {m['true']}, predicted {m['predicted']}"))
            for i, m in enumerate(worst)]


def _first_conv(model: nn.Module) -> str | None:
    """Return the name of the model's first Conv2d (None without one)."""
    return next((name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)), None)


def _inside(run: Run, images: torch.Tensor | None, channels: int = 4, top: int = 6) -> dict[str, Any]:
    """Return the first layer's filter grid and the top exemplar crops of a few channels of the last stage."""
    first = _first_conv(run.model)
    inside: dict[str, Any] = {"first_layer": first, "filters": None, "stage": None, "exemplars": []}
    if first is not None:
        inside["filters"] = plots.image_uri(filter_grid(run.model, first), scale=8)
    if images is None:
        return inside
    stage = default_layer(run.model)
    sample = images[sample_indices(len(images), 2000)]  # seeded: a class-sorted folder gives every class
    found = top_exemplars(run.model, batches_of(sample, 256, run.normalisation), stage, list(range(channels)), k=top)
    inside["stage"] = stage
    for channel, best in found.items():
        # Grey beyond the image: a deep unit's field is larger than the picture, and shows it.
        crops = [crop(sample[e.index].float() / 255, e.window, fill=0.8) for e in best]
        scale = max(1, round(128 / max(crops[0].shape[1:])))  # about 128 pixels a crop
        inside["exemplars"].append({"channel": channel, "picture": plots.image_uri(tile(torch.stack(crops), columns=top), scale=scale),
                                    "field": f"{crops[0].shape[1]}x{crops[0].shape[2]}"})
    return inside


def _health(facts: RunFacts) -> dict[str, Any] | None:
    """Return the training-health plots of diagnostics.jsonl (None when the run recorded none)."""
    history = facts.diagnostics
    if not history:
        return None
    step = max(1, len(history) // 12)
    shown = history[::step] if (len(history) - 1) % step == 0 else [*history[::step], history[-1]]
    last = history[-1]["activations"]
    return {
        "grad_norm": plots.by_layer(shown, lambda line: line["grad_norm"], "mean L2 norm of each layer's weight gradient", log=True),
        "std": plots.by_layer(shown, lambda line: {k: v["std"] for k, v in line["activations"].items()}, "activation std (probe batch)"),
        "mean": plots.by_layer(shown, lambda line: {k: v["mean"] for k, v in line["activations"].items()}, "activation mean (probe batch)"),
        "dead": plots.by_layer(shown, lambda line: {k: v["dead"] for k, v in line["activations"].items()}, "fraction of dead units"),
        "worst_dead": sorted(({"layer": k, "dead": v["dead"]} for k, v in last.items()), key=lambda r: -r["dead"])[:5],
        "probe_images": history[-1].get("probe_images"),
        "epochs": len(history),
    }


def report_context(path: str | Path, methods: Sequence[str] = DEFAULT_METHODS, data_dir: str | None = None,
                   device: str | torch.device = "cpu", mistakes: int = 8) -> dict[str, Any]:
    """Return everything the report template shows of the run at `path`."""
    facts = read_facts(path)
    if facts.info.task is TaskName.SEGMENTATION:
        raise CnnlabError(f"{facts.path} is a segmentation run: this version reports classification and detection runs; "
                          "score it with cnnlab eval")
    require_trained(facts.path, finished=True)  # the page headlines summary.json's figures: only a finished run has them
    run = load_run(facts.path, device=device)
    test = run.test_split(data_dir)
    scores, tally = score_tally(run, test)
    images = test.resident()  # None for a streamed split: tables without pictures
    common = {
        "facts": facts, "figures": facts.figures(), "recipe_yaml": run.recipe.to_yaml(), "scores": scores,
        "layers": _layer_table(run), "curves": plots.curves([(facts.name, facts.metrics)]) if facts.metrics else None,
        "health": _health(facts), "streamed": images is None,
    }
    if facts.info.task is TaskName.DETECTION:
        return {**common, "detection": detection_section(scores, tally, images, run.classes),
                "pr_curves": pr_curves(scores), "sections": DETECTION_SECTIONS}
    return {
        **common, "confusion": plots.confusion(scores["confusion_matrix"], run.classes),
        "per_class": _per_class(scores, run.classes),
        "mistakes": _mistakes(run, images, scores, methods, mistakes), "methods": list(methods),
        "inside": _inside(run, images), "sections": SECTIONS,
    }


def write_report(path: str | Path, out: str | Path | None = None, methods: Sequence[str] = DEFAULT_METHODS,
                 data_dir: str | None = None, device: str | torch.device = "cpu") -> Path:
    """Write the run's report (default RUN/report.html) and return its path."""
    context = report_context(path, methods, data_dir, device)
    target = Path(out) if out is not None else Path(path) / "report.html"
    write_text(target, render_page("report.html.j2", title=f"{context['facts'].name}: cnnlab report", **context))
    return target
