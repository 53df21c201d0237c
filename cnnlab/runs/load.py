"""load_run: the one way anything reads a run directory (eval, predict, explain, report, a teacher).

It gives the model with the chosen weights (the EMA copy when the run kept one), the recipe, the
typed data.json, the normalisation, and the run's own held-out test split, prepared as training
prepared its images.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from cnnlab.data.boxes import Letterbox, letterbox_padded
from cnnlab.data.collection import Images
from cnnlab.data.images import prepare_images, read_image_file, resize_images
from cnnlab.data.normalise import Normalisation
from cnnlab.data.placement import place
from cnnlab.data.sources import load
from cnnlab.errors import CnnlabError
from cnnlab.models.registry import create_model
from cnnlab.runs.checkpoint import load_checkpoint, recover
from cnnlab.runs.info import RunInfo, TaskName
from cnnlab.runs.recipe import Recipe, Weights, load_recipe


@dataclass(frozen=True)
class Run:
    """A trained run: its model (eval mode, chosen weights), recipe, data.json and where they came from."""

    path: Path
    info: RunInfo
    recipe: Recipe
    model: nn.Module
    checkpoint: str  # "best", "last", "swa" or "snapshot-k": the checkpoint directory the weights came from
    ema: bool  # whether they are the run's exponential moving average

    @property
    def normalisation(self) -> Normalisation:
        """Return the normalisation the run trained with."""
        return self.info.normalisation

    @property
    def classes(self) -> tuple[str, ...]:
        """Return the class names the model's outputs index."""
        return self.info.classes

    def weights_used(self) -> dict[str, object]:
        """Return which weights score the run, as summary.json and eval.json record them (with their digest)."""
        return {"checkpoint": self.checkpoint, "ema": self.ema, "digest": weights_digest(self.model)}

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Return uint8 images (N, C, H, W) resized and padded as the run's training images were."""
        return prepare_images(images, self.info.resize, self.info.pad)

    def read_placed(self, name: str) -> tuple[torch.Tensor, torch.Tensor, Letterbox]:
        """Return a detection run's image file as read (C, H, W), letterboxed and padded as the run placed its images, and how."""
        image = read_image_file(name, self.info.image_size[0])
        canvas, placement = letterbox_padded(image, self.info.input_size[1] - 2 * self.info.pad, self.info.pad)
        return image, canvas, placement

    def read_images(self, paths: list[str] | tuple[str, ...]) -> torch.Tensor:
        """Return uint8 images (N, C, H, W) of image files, read, sized and prepared as the run's images were."""
        if self.info.task is TaskName.DETECTION:  # boxes keep their shapes: letterboxed, not stretched
            return torch.stack([self.read_placed(name)[1] for name in paths])
        channels, height, width = self.info.image_size
        loaded = []
        for name in paths:
            image = read_image_file(name, channels)
            # Without a recipe resize the model saw images at their read size: bring this one there.
            loaded.append(image[None] if self.info.resize else resize_images(image[None], height, width))
        return self.prepare(torch.cat(loaded))

    def test_split(self, data_dir: str | Path | None = None, spec: str | None = None) -> Images:
        """Return the run's held-out test part (or `spec`'s), read and placed as training placed it."""
        spec = spec or self.info.spec
        # The run's own seed: digits and split-less folders hold out their test part by it.
        test = load(spec, data_dir, seed=self.info.seed, stream=self.info.stream, resize=self.info.resize).test
        if tuple(test.classes) != self.info.classes:
            raise CnnlabError(f"{spec} has {len(test.classes)} classes ({_names(test.classes)}), the run was trained on "
                              f"{len(self.info.classes)} ({_names(self.info.classes)}): give the run's own data")
        return place(test, self.info.resize, self.info.pad, self.info.stream, self.recipe.runtime.workers)


def _names(classes: tuple[str, ...] | list[str]) -> str:
    """Return class names for a message: all of a short list, else the first and last few."""
    names = list(classes)
    return ", ".join(names) if len(names) <= 12 else ", ".join(names[:5]) + ", ..., " + ", ".join(names[-3:])


def choose_checkpoint(run: Path, info: RunInfo, weights: Weights | str) -> str:
    """Return "best", "last", "swa" or a snapshot's name: `auto` is swa when kept, else best when the run validated, else last."""
    if isinstance(weights, str) and weights.startswith("snapshot-"):  # a snapshot ensemble's member
        if not (run / "checkpoints" / weights).is_dir():
            raise CnnlabError(f"{run} has no checkpoints/{weights}: train it with paradigm.snapshot.enabled=true")
        return weights
    weights = Weights(weights)
    has_swa = (run / "checkpoints" / "swa").is_dir() or (run / "checkpoints" / ".swa-retired").is_dir()
    if weights is Weights.SWA and not has_swa:
        raise CnnlabError(f"{run} has no swa checkpoint: train it with paradigm.swa.start_epoch=N")
    if weights in (Weights.SWA, Weights.AUTO) and has_swa:
        return "swa"  # what the run trained towards: its average
    has_best = (run / "checkpoints" / "best").is_dir() or (run / "checkpoints" / ".best-retired").is_dir()
    if weights is Weights.AUTO:
        return "best" if info.val_images > 0 and has_best else "last"
    if weights is Weights.BEST and not has_best:
        raise CnnlabError(f"{run} has no best checkpoint (it kept no validation split): use --checkpoint last")
    return weights.value


def run_recipe(run: Path) -> Recipe:
    """Return the resolved recipe a run directory holds, or a one-line error when it has none."""
    if not (run / "recipe.yaml").is_file():
        raise CnnlabError(f"{run} has no recipe.yaml: give a run directory written by cnnlab train")
    return load_recipe(str(run / "recipe.yaml"))


def _recorded_epoch(directory: Path) -> int | None:
    """Return the epoch count a checkpoint's state.json records, or None when it has none to read."""
    recover(directory)
    try:
        epoch = json.loads((directory / "state.json").read_text()).get("epoch", 0)
    except (OSError, ValueError, AttributeError):
        return None  # absent or damaged: load_checkpoint names the file and what is wrong with it
    if not isinstance(epoch, int):
        raise CnnlabError(f"{directory / 'state.json'} records no epoch count ({epoch!r}): the checkpoint is damaged")
    return epoch


def require_trained(path: str | Path, checkpoint: str = "last", *, finished: bool = False) -> None:
    """Raise one line naming the fix unless the run's `checkpoint` holds a finished epoch's weights (`finished`: and summary.json).

    A run killed in its first epoch keeps checkpoints/last at epoch 0 (the starting point resume
    continues from), or no checkpoint at all; its weights are untrained, so nothing uses it as a
    source. No run records a digest of its own weights, so the epoch in state.json is the evidence.
    """
    run = Path(path)
    fix = f"finish it with cnnlab train --resume {run}"
    epoch = _recorded_epoch(run / "checkpoints" / checkpoint)
    # None with other checkpoints beside it: this one is damaged or absent, which load_checkpoint reports.
    if epoch is None and not any((run / "checkpoints").glob("*/state.json")):
        raise CnnlabError(f"{run} has not finished an epoch (no checkpoint yet): {fix}")
    if epoch is not None and epoch < 1:
        raise CnnlabError(f"{run} has not finished an epoch (checkpoints/{checkpoint} holds its starting weights): {fix}")
    if finished and not (run / "summary.json").is_file():
        raise CnnlabError(f"{run} has not finished training (no summary.json): {fix}")


def weights_digest(model: nn.Module) -> str:
    """Return the first 16 hex digits of the SHA-256 of a model's state (names, shapes, dtypes and values)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous().reshape(-1)  # 0-d counters cannot be viewed as bytes
        digest.update(f"{name}:{tuple(tensor.shape)}:{value.dtype};".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()[:16]


def check_summary_weights(run: Path, checkpoint: str, ema: bool, model: nn.Module) -> None:
    """Raise one line when summary.json describes this checkpoint's weights by a digest they no longer match."""
    try:
        recorded = json.loads((run / "summary.json").read_text()).get("weights", {})
    except (OSError, ValueError, AttributeError):
        return  # no summary (a run still training) or one of the first release: nothing to compare with
    if not isinstance(recorded, dict) or "digest" not in recorded or recorded.get("checkpoint") != checkpoint:
        return
    if bool(recorded.get("ema")) == ema and recorded["digest"] != weights_digest(model):
        raise CnnlabError(f"{run}/checkpoints/{checkpoint} holds other weights than its summary.json describes "
                          f"(digest {weights_digest(model)}, summary {recorded['digest']}): it was changed after it "
                          f"finished; if it was resumed, finish it with cnnlab train --resume {run}, else restore or retrain it")


def load_run(path: str | Path, weights: Weights | str | None = None, device: str | torch.device = "cpu", *,
             verify: bool = True) -> Run:
    """Return the run at `path` with its model on `device`: weights from the recipe's choice unless given.

    Refuses, in one line, a run that has not finished an epoch (`require_trained`) and, with `verify`,
    weights that are not the ones its summary.json describes (training itself scores before writing it).
    """
    run = Path(path)
    info = RunInfo.read(run)
    recipe = run_recipe(run)
    checkpoint = choose_checkpoint(run, info, weights or recipe.evaluation.weights)
    require_trained(run, checkpoint)  # untrained weights would score, teach or transfer as if they were the run's
    model = create_model(info.model, num_classes=len(info.classes), in_chans=info.input_size[0],
                         input_size=info.input_size[1])
    state, _ = load_checkpoint(run / "checkpoints" / checkpoint, model)
    ema = state.get("ema") is not None
    if ema:
        # The run validated (and chose `best` by) the EMA weights, so those are what it serves.
        averaged = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
        try:
            model.load_state_dict(averaged)
        except RuntimeError as error:
            raise CnnlabError(f"{run}/checkpoints/{checkpoint} holds EMA weights of another model ({str(error).splitlines()[0]})") from None
    if verify:
        check_summary_weights(run, checkpoint, ema, model)
    return Run(run, info, recipe, model.to(device).eval(), checkpoint, ema)
