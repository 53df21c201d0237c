"""`cnnlab eval` and `cnnlab predict`: read a run directory, score its checkpoint, classify images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data.images import prepare_images
from cnnlab.data.sources import load
from cnnlab.errors import CnnlabError
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.engine import Normalisation
from cnnlab.train.run import build_model, place


def load_run(run: Path, checkpoint: str = "best") -> tuple[nn.Module, dict[str, Any], Normalisation]:
    """Return (model in eval mode with the checkpoint's weights, data.json, normalisation) of a run."""
    data_file = run / "data.json"
    if not data_file.is_file():
        raise CnnlabError(f"{run} has no data.json: give a run directory written by cnnlab train")
    info = json.loads(data_file.read_text())
    model = build_model(info["model"], len(info["classes"]), info["input_size"][0])
    state, _ = load_checkpoint(run / "checkpoints" / checkpoint, model)
    if state.get("ema") is not None:
        # The run validated (and chose `best` by) the EMA weights, so those are what it serves.
        model.load_state_dict({k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")})
    return model.eval(), info, Normalisation(tuple(info["mean"]), tuple(info["std"]))


@torch.no_grad()
def evaluate_run(
    run: Path, data: str | None = None, data_dir: str | None = None, split: str = "test", checkpoint: str = "best"
) -> dict[str, Any]:
    """Return top-1, top-5, loss, per-class accuracy and the confusion matrix of a run's checkpoint."""
    model, info, norm = load_run(run, checkpoint)
    if split != "test":
        raise CnnlabError(f"split {split!r} is not available: this version evaluates the test split")
    spec = data or info["spec"]
    stream = info.get("stream", False)
    # The run's own seed: digits and split-less folders hold out their test part by it.
    test = load(spec, data_dir, seed=info.get("seed", 0), stream=stream).test
    if tuple(test.classes) != tuple(info["classes"]):
        raise CnnlabError(f"{spec} has classes {list(test.classes)[:5]}..., the run was trained on {info['classes'][:5]}...")
    test = place(test, info.get("resize"), info.get("pad", 0), stream)  # as the training images were
    device = next(model.parameters()).device
    scored = list(test.batches(torch.arange(len(test)).split(512), device))  # unreadable files are left out
    logits = torch.cat([model(norm(images)) for images, y in scored if len(y)])
    labels = torch.cat([y for _, y in scored])
    n_classes = len(info["classes"])
    ranked = logits.topk(min(5, n_classes), dim=1).indices
    confusion = torch.zeros(n_classes, n_classes, dtype=torch.long)
    confusion.index_put_((labels, ranked[:, 0]), torch.ones_like(labels), accumulate=True)  # rows: truth
    per_class = (confusion.diag().float() / confusion.sum(1).clamp_min(1)).tolist()
    return {
        "run": str(run),
        "data": spec,
        "images": len(labels),
        "top1": (ranked[:, 0] == labels).float().mean().item(),
        "top5": (ranked == labels[:, None]).any(1).float().mean().item(),
        "loss": F.cross_entropy(logits, labels).item(),
        "per_class_accuracy": dict(zip(info["classes"], per_class, strict=True)),
        "confusion_matrix": confusion.tolist(),
    }


def plot_confusion(result: dict[str, Any], path: Path) -> None:
    """Write the confusion matrix of an evaluation as a PNG (rows: true class, columns: predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(result["confusion_matrix"])
    classes = list(result["per_class_accuracy"])
    figure, axes = plt.subplots(figsize=(1 + 0.5 * len(classes), 1 + 0.5 * len(classes)))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(classes)), classes, rotation=90)
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"top-1 {result['top1']:.2%}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


@torch.no_grad()
def predict(run: Path, image_paths: list[str], top_k: int = 5) -> list[dict[str, Any]]:
    """Return the top-k classes with probabilities for each image file, resized to the run's input."""
    from PIL import Image, UnidentifiedImageError

    model, info, norm = load_run(run)
    channels, height, width = info.get("image_size", info["input_size"])
    results = []
    for name in image_paths:
        try:
            with Image.open(name) as image:
                picture = image.convert("L" if channels == 1 else "RGB")
                if not info.get("resize"):  # the model saw images at their read size: bring this one there
                    picture = picture.resize((width, height))
        except (FileNotFoundError, UnidentifiedImageError, OSError) as error:
            raise CnnlabError(f"cannot read image {name} ({type(error).__name__}): give a PNG or JPEG file") from None
        array = np.asarray(picture, dtype=np.uint8).reshape(picture.height, picture.width, channels)
        x = torch.from_numpy(array.copy()).permute(2, 0, 1).unsqueeze(0)  # (1, C, H, W) uint8
        # The training resize (antialiased, torchvision's) and padding, from the image's own size.
        x = prepare_images(x, info.get("resize"), info.get("pad", 0))
        probabilities = model(norm(x)).softmax(dim=1)[0]
        values, indices = probabilities.topk(min(top_k, len(info["classes"])))
        results.append({
            "image": name,
            "top": [{"class": info["classes"][i], "probability": round(v, 6)} for v, i in zip(values.tolist(), indices.tolist(), strict=True)],
        })
    return results
