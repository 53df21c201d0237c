"""The data of one run: split into train / validation (seeded) and test, subset, pseudo-labelled, and placed.

Placed means resident on the training device as uint8, or streamed by DataLoader workers when
the training set would not fit; under torchrun rank 0 decides for every rank.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch

from cnnlab.data.collection import Images
from cnnlab.data.loader import sample_indices
from cnnlab.data.placement import check_fits, place, too_big
from cnnlab.data.sources import DataSplits, ImageSet, labelled_split, load, shuffle_labels, split
from cnnlab.errors import CnnlabError
from cnnlab.runs.recipe import Recipe
from cnnlab.train.distributed import Distributed
from cnnlab.train.paradigms.pseudo_labels import PSEUDO_LABELS, check_teacher_split, pseudo_labelled


@dataclass(frozen=True)
class Parts:
    """The data of one run, placed: train, validation (or None), test, and how they are read."""

    splits: DataSplits
    train: Images
    val: Images | None
    test: Images
    stream: bool
    pseudo: dict[str, torch.Tensor] | None = None  # Noisy Student's pseudo-labels, kept in the run directory


def _labelled(train: Images, recipe: Recipe,
              resume: Path | None) -> tuple[Images, dict[str, torch.Tensor] | None]:
    """Return the training part with labels (and, for Noisy Student, its teacher's pseudo-labels of the rest)."""
    config = recipe.paradigm.noisy_student
    if config.teacher is not None:
        check_teacher_split(config.teacher, recipe)
    if recipe.data.labelled_fraction is None:
        return train, None
    labelled, unlabelled = labelled_split(train, recipe.data.labelled_fraction, recipe.seed)
    if config.teacher is None:
        return train.subset(labelled), None
    saved = None if resume is None else resume / PSEUDO_LABELS
    return pseudo_labelled(train.subset(labelled), train.subset(unlabelled), config, saved)


def run_data(spec: str, data_dir: str | None, recipe: Recipe, dist: Distributed, device: torch.device,
             resume: Path | None = None) -> Parts:
    """Return the run's data split and placed (resident or streamed: rank 0 decides for all)."""
    splits = load(spec, data_dir, seed=recipe.seed, stream=bool(recipe.runtime.stream), resize=recipe.data.input_size)
    if recipe.data.random_labels:
        splits = replace(splits, train=shuffle_labels(splits.train, recipe.seed))
    fraction = recipe.data.val_fraction
    train, val = split(splits.train, fraction, recipe.seed) if fraction > 0 else (splits.train, None)
    if recipe.data.train_images is not None:
        train = _subset(train, recipe.data.train_images, recipe.seed)
    train, pseudo = _labelled(train, recipe, resume)
    size, pad = recipe.data.input_size, recipe.data.input_pad
    check_fits(train, size, pad, recipe.batch_size, device)
    dense = isinstance(train, ImageSet) and train.labels.ndim > 1  # masks and boxes are never streamed
    if recipe.runtime.stream is None and dense and too_big(train, size, pad, device):
        raise CnnlabError(f"{spec} does not fit in memory ({len(train)} images), and masks and boxes stay resident: "
                          "use a smaller input_size or data.train_images")
    stream = recipe.runtime.stream if recipe.runtime.stream is not None else (not dense and too_big(train, size, pad, device))
    stream = bool(dist.broadcast(stream))  # every rank must read its data the same way
    train, val, test = (None if part is None else place(part, size, pad, stream, recipe.runtime.workers)
                        for part in (train, val, splits.test))
    return Parts(splits, train, val, test, stream, pseudo)


def _subset(train: Images, count: int, seed: int) -> Images:
    """Return a seeded draw of `count` training images, or one line when there are fewer."""
    if count > len(train):
        raise CnnlabError(f"data.train_images={count} but the training split holds {len(train)} images: "
                          f"use at most {len(train)}, or leave it out")
    return train.subset(sample_indices(len(train), count, seed + 7919))  # a draw of its own, not the split's
