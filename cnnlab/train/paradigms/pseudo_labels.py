"""Noisy Student's pseudo-labels (Xie et al. 2020), inside one run: a teacher labels the unlabelled part.

A round is an ordinary run directory whose recipe names its teacher (paradigm.noisy_student):
the teacher labels the unlabelled part of the training split once, unnoised, the labels are
thresholded and class-balanced, and the student trains on the labelled part and those pseudo-
labels together with the recipe's augmentation (and the student model's dropout) as its noise.
The pseudo-labels are kept in the round's directory, so resuming it trains on the same ones.
The chain of rounds, each student teaching the next, is cnnlab.workflows.noisy_student.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.data.sources import ImageSet
from cnnlab.errors import CnnlabError
from cnnlab.runs.load import load_run
from cnnlab.runs.paradigm import NoisyStudentConfig
from cnnlab.runs.recipe import Recipe

PSEUDO_LABELS = "pseudo_labels.safetensors"


@torch.no_grad()
def teacher_probabilities(teacher: str | Path, images: torch.Tensor, batch_size: int = 1000,
                          device: str | torch.device = "cpu") -> torch.Tensor:
    """Return the teacher run's softmax (N, K) on uint8 images as read, prepared and normalised as it trained."""
    run = load_run(teacher, device=device)
    rows = []
    for start in range(0, len(images), batch_size):
        batch = run.prepare(images[start : start + batch_size]).to(device)
        rows.append(run.model(run.normalisation(batch)).float().softmax(dim=1).cpu())
    return torch.cat(rows) if rows else torch.zeros(0, len(run.classes))


def select(probabilities: torch.Tensor, threshold: float, balance: bool) -> torch.Tensor:
    """Return the indices of the pseudo-labelled images to train on: confident ones, class-balanced (repeats allowed).

    Balancing follows Xie et al.'s Sec. 2: each class gets the mean class's count; a larger class
    keeps its most confident images, a smaller one repeats its own in order of confidence.
    """
    confidence, predicted = probabilities.max(dim=1)
    kept = (confidence >= threshold).nonzero().flatten()
    if not balance or len(kept) == 0:
        return kept
    classes = probabilities.shape[1]
    per_class = max(1, round(len(kept) / classes))
    chosen = []
    for k in range(classes):
        members = kept[predicted[kept] == k]
        if len(members) == 0:
            continue  # no image of this class: nothing to repeat
        members = members[confidence[members].argsort(descending=True)]
        repeats = -(-per_class // len(members))
        chosen.append(members.repeat(repeats)[:per_class])
    return torch.cat(chosen).sort().values


def pseudo_labelled(labelled: ImageSet, unlabelled: ImageSet, config: NoisyStudentConfig,
                    saved: Path | None = None) -> tuple[ImageSet, dict[str, torch.Tensor]]:
    """Return (labelled + pseudo-labelled images as one set, the tensors to keep), reading `saved` when it exists."""
    if not isinstance(labelled, ImageSet) or not isinstance(unlabelled, ImageSet):
        raise CnnlabError("paradigm.noisy_student holds its pseudo-labels with the images in memory: set runtime.stream=false")
    if saved is not None and saved.is_file():
        from safetensors.torch import load_file

        kept = load_file(str(saved))
        index, probabilities = kept["index"], kept["probabilities"]
    else:
        all_probabilities = teacher_probabilities(config.teacher, unlabelled.images)
        index = select(all_probabilities, config.threshold, config.balance)
        probabilities = all_probabilities[index]
        kept = {"index": index, "probabilities": probabilities}
    if len(index) and int(index.max()) >= len(unlabelled):
        raise CnnlabError(f"{saved} indexes {int(index.max()) + 1} unlabelled images but there are {len(unlabelled)}: "
                          "the round's data changed; delete the round to label it again")
    classes = len(labelled.classes)
    if probabilities.shape[1] != classes:
        raise CnnlabError(f"the teacher {config.teacher} knows {probabilities.shape[1]} classes, the data {classes}: "
                          "teach with a run of the same data")
    images = torch.cat([labelled.images, unlabelled.images[index]])
    hard = probabilities.argmax(dim=1)
    labels = torch.cat([labelled.labels, hard])
    if not config.soft:
        return ImageSet(images, labels, labelled.classes, labelled.skipped), kept
    soft = torch.cat([F.one_hot(labelled.labels, classes).float(), probabilities])
    return ImageSet(images, labels, labelled.classes, labelled.skipped, soft), kept


def check_teacher_split(teacher: str, recipe: Recipe) -> None:
    """Raise one line unless the teacher's labelled part is the student's: same seed, fractions and subset."""
    from cnnlab.runs.load import run_recipe

    if recipe.data.labelled_fraction is None:
        raise CnnlabError("paradigm.noisy_student needs an unlabelled part: set data.labelled_fraction (e.g. 0.01)")
    taught = run_recipe(Path(teacher))
    theirs, ours = taught.data, recipe.data
    same = (theirs.labelled_fraction, theirs.val_fraction, theirs.train_images) == (
        ours.labelled_fraction, ours.val_fraction, ours.train_images)
    if not same or taught.seed != recipe.seed:
        raise CnnlabError(f"teacher {teacher} drew its labelled part with another seed or data fractions: its "
                          "unlabelled part must be the student's, so train both with the same seed and data.* keys")
