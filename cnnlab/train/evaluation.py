"""One scoring path: validation, training's final test score and `cnnlab eval` all call `evaluate`.

`score_run` scores a run's chosen weights (best when it validated, else last; the EMA copy when
kept) with the recipe's test-time augmentation and batch size; training writes its result into
summary.json and `cnnlab eval` into eval.json, so the two agree to the last digit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.data.collection import Images
from cnnlab.data.normalise import Normalisation
from cnnlab.data.tta import TTA, Views, centre_crop
from cnnlab.devices import device_of
from cnnlab.errors import CnnlabError
from cnnlab.runs.info import TaskName
from cnnlab.runs.load import Run, load_run
from cnnlab.train.tasks import Tally, Task, task_for
from cnnlab.train.tasks.detection import detections


def scored_batches(data: Images, batch_size: int,
                   device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (uint8 images, targets) of every scored batch on `device`, in order; empty streamed batches are left out."""
    for images, y in data.batches(torch.arange(len(data)).split(batch_size), device):
        if len(y):  # a streamed batch of unreadable files is left out of the count too
            yield images, y


def view_logits(model: nn.Module, x: torch.Tensor, tta: TTA | str | Views = TTA.NONE) -> torch.Tensor:
    """Return float logits of a normalised batch averaged over its test-time views."""
    views = tta if isinstance(tta, Views) else Views(TTA(tta))
    outputs = [model(view).float() for view in views(x)]
    # One view is the output itself: a detector's output is no tensor to average (its task refuses TTA).
    return outputs[0] if len(outputs) == 1 else torch.stack(outputs).mean(0)


@torch.no_grad()
def check_views(model: nn.Module, input_size: tuple[int, ...], views: Views) -> None:
    """Raise one line when `model` cannot score the views of an input (C, H, W): a head that takes one size only."""
    was_training = model.training
    model.eval()
    device = device_of(model)
    try:
        for view in views(torch.zeros(1, *input_size, device=device)):
            try:
                model(view)
            except RuntimeError as error:
                size = "x".join(map(str, view.shape[-2:]))
                raise CnnlabError(f"the model cannot score the {size} views of tta {TTA(views.mode).value} "
                                  f"({str(error).splitlines()[0][:80]}): its head takes one input size; use tta none or "
                                  "10crop at the training size, or a model with global pooling") from None
    finally:
        model.train(was_training)


@torch.no_grad()
def evaluate(
    model: nn.Module, data: Images, norm: Normalisation, task: Task,
    tta: TTA | str | Views = TTA.NONE, batch_size: int = 512, *, full: bool = False,
) -> Tally:
    """Return the task's tally of `model` on `data` (logits averaged over the `tta` views); mode restored.

    `full` asks for every figure of eval.json (a detector's 12 COCO figures), not only validation's.
    """
    was_training = model.training
    model.eval()
    device = device_of(model)
    tally = task.tally(device, full)
    for images, y in scored_batches(data, batch_size, device):
        tally.add(view_logits(model, norm(images), tta), y)
    model.train(was_training)
    return tally


def score_run(run: Run, test: Images) -> dict[str, Any]:
    """Return the run's test figures (eval.json): its chosen weights, its TTA, the task's metrics."""
    return score_tally(run, test)[0]


def score_tally(run: Run, test: Images) -> tuple[dict[str, Any], Tally]:
    """Return the run's test figures (eval.json) and the tally they come from (a detector's per-image boxes)."""
    task = task_for(run.info.task, len(run.classes), run.recipe.loss)
    evaluation = run.recipe.evaluation
    tally = evaluate(run.model, test, run.normalisation, task, evaluation.views(), evaluation.batch_size, full=True)
    return {
        "run": str(run.path), "data": run.info.spec, "task": run.info.task.value, "images": tally.images,
        "weights": run.weights_used(), "tta": evaluation.tta.value, **tally.report(run.classes),
    }, tally


def evaluate_run(path: str | Path, data: str | None = None, data_dir: str | None = None,
                 checkpoint: str | None = None, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Return the test figures of the run at `path` on its own test split (or `data`'s): eval.json."""
    run = load_run(path, checkpoint, device=device)
    result = score_run(run, run.test_split(data_dir, data))
    return {**result, "data": data or result["data"]}


def plot_confusion(result: dict[str, Any], path: Path) -> None:
    """Write the row-normalised confusion matrix of an evaluation as a PNG (rows: true class, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(result["confusion_matrix"], dtype=np.float64)
    # Each row as fractions of its true class: one dominant class (background) no longer hides the rest.
    matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    classes = list(result.get("per_class_accuracy") or result["per_class_iou"])
    figure, axes = plt.subplots(figsize=(2 + 0.5 * len(classes), 1 + 0.5 * len(classes)))
    image = axes.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, label="fraction of the true class")
    axes.set_xticks(range(len(classes)), classes, rotation=90)
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    headline = f"top-1 {result['top1']:.2%}" if "top1" in result else f"mIoU {result['miou']:.3f}"
    axes.set_title(headline)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_pr_curves(result: dict[str, Any], path: Path) -> None:
    """Write each class's precision-recall curve at IoU 0.5 (COCO's 101 recall points) of a detection evaluation as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = result["pr_curves"]
    figure, axes = plt.subplots(figsize=(6.5, 5))
    colours = plt.get_cmap("tab20")
    for index, (name, precision) in enumerate(curves["precision"].items()):
        values = np.array(precision, dtype=np.float64)
        if (values < 0).all():
            continue  # a class with no box in the split has no curve
        ap50 = result["per_class_ap50"][name]
        axes.plot(curves["recall"], np.where(values < 0, np.nan, values), color=colours(index % 20),
                  label=f"{name}  AP50 {ap50:.3f}")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision (interpolated)")
    axes.set_title(f"IoU {curves['iou']}: AP50 {result['ap50']:.3f}, AP {result['ap']:.3f} (0.5:0.95)")
    axes.legend(fontsize=7, loc="lower left", ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def result_picture(result: dict[str, Any]) -> tuple[str, Callable[[Path], None]]:
    """Return the file name and writer of an evaluation's picture: PR curves for detection, else the confusion matrix."""
    if result.get("task") == TaskName.DETECTION.value:
        return "pr_curves.png", lambda path: plot_pr_curves(result, path)
    return "confusion.png", lambda path: plot_confusion(result, path)


@torch.no_grad()
def predict_boxes(run: Run, image_paths: list[str], min_score: float = 0.3) -> list[dict[str, Any]]:
    """Return each image file's detections scoring at least `min_score`, in the file's own pixels, with the image read.

    An image is letterboxed to the run's square input (scaled to fit, centred on zeros), and the
    detections are mapped back through the same placement.
    """
    if run.info.task is not TaskName.DETECTION:
        raise CnnlabError(f"{run.path} is a {run.info.task.value} run: boxes come from detection runs")
    device = device_of(run.model)
    results = []
    for name in image_paths:
        image, canvas, placement = run.read_placed(name)
        found = detections(run.model(run.normalisation(canvas[None].to(device))))[0]
        keep = found.scores >= min_score
        boxes = placement.inverse(found.boxes[keep].cpu(), image.shape[1], image.shape[2])
        results.append({
            "image": name, "height": image.shape[1], "width": image.shape[2], "pixels": image,
            "detections": [{"class": run.classes[int(c)], "class_index": int(c), "score": round(float(s), 6),
                            "box": [round(float(v), 2) for v in box]}
                           for box, s, c in zip(boxes, found.scores[keep], found.classes[keep], strict=True)],
        })
    return results


@torch.no_grad()
def predict(run: Run, image_paths: list[str], top_k: int = 5) -> list[dict[str, Any]]:
    """Return the top-k classes with probabilities for each image file, prepared as the run's images were."""
    if run.info.task is TaskName.DETECTION:
        raise CnnlabError(f"{run.path} is a detection run: its predictions are boxes (predict_boxes)")
    if run.info.task is not TaskName.CLASSIFICATION:
        raise CnnlabError(f"{run.path} is a {run.info.task.value} run: predict classifies images; score it with cnnlab eval")
    device = device_of(run.model)
    results = []
    for name in image_paths:
        x = run.normalisation(run.read_images([name]).to(device))  # (1, C, H, W), as training saw its images
        if run.recipe.evaluation.crop is not None:  # trained on crops: the centre crop, as its test score
            x = centre_crop(x, run.recipe.evaluation.crop)
        probabilities = run.model(x).softmax(dim=1)[0]
        values, indices = probabilities.topk(min(top_k, len(run.classes)))
        results.append({
            "image": name,
            "top": [{"class": run.classes[i], "probability": round(v, 6)} for v, i in zip(values.tolist(), indices.tolist(), strict=True)],
        })
    return results
