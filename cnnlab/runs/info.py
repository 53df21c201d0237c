"""RunInfo: the typed, versioned data.json of a run directory (all that eval and predict need).

Schema 1 is the first release's data.json (no `schema` or `task` key: a classification run);
schema 2 adds both. Both read into the same RunInfo, which writes schema 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cnnlab.data.normalise import Normalisation
from cnnlab.errors import CnnlabError
from cnnlab.runs.config import build, to_plain
from cnnlab.runs.rundir import write_json

SCHEMA = 2


class TaskName(StrEnum):
    """What a run's model predicts (cnnlab.train.tasks holds the losses and metrics of each)."""

    CLASSIFICATION = "classification"  # one class per image
    SEGMENTATION = "segmentation"  # one class per pixel
    DETECTION = "detection"  # boxes, each with a class


@dataclass(frozen=True)
class RunInfo:
    """What a run was trained on and how its images were prepared."""

    spec: str  # the data spec (`mnist`, `folder:PATH`, ...)
    model: str  # registry name: zoo, tv/<name> or timm/<name>
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per-channel normalisation, 0..1 units
    std: tuple[float, ...]
    image_size: tuple[int, ...]  # (C, H, W) as read (files of mixed sizes: as resized), before padding
    input_size: tuple[int, ...]  # (C, H, W) the model sees
    resize: int | None = None  # images resized to resize x resize once
    pad: int = 0  # then zero-padded on each side
    stream: bool = False  # read by DataLoader workers
    seed: int = 0  # of the held-out test part, for specs without an official one
    train_images: int = 0
    val_images: int = 0
    test_images: int = 0
    skipped_images: int = 0  # unreadable images left out while reading
    cnnlab: str = ""  # version that wrote the run
    task: TaskName = TaskName.CLASSIFICATION
    schema: int = SCHEMA

    @property
    def normalisation(self) -> Normalisation:
        """Return the normalisation the run trained with."""
        return Normalisation(self.mean, self.std)

    @classmethod
    def read(cls, run: Path) -> RunInfo:
        """Return the RunInfo of a run directory, or raise one line naming the file and what is wrong."""
        path = Path(run) / "data.json"
        if not path.is_file():
            if (run / "recipe.yaml").is_file():  # killed before its data was read: it holds no weights at all
                raise CnnlabError(f"{run} was stopped before training began (no data.json): train it again "
                                  "with cnnlab train, into a new --out")
            raise CnnlabError(f"{run} has no data.json: give a run directory written by cnnlab train")
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CnnlabError(f"{path} is not valid JSON ({error}): the run directory is damaged") from None
        if not isinstance(data, dict):
            raise CnnlabError(f"{path} holds a {type(data).__name__}, not a mapping: the run directory is damaged")
        data.setdefault("schema", 1)
        if "input_size" in data:
            data.setdefault("image_size", data["input_size"])  # the earliest runs wrote only what the model saw
        if not isinstance(data["schema"], int) or not 1 <= data["schema"] <= SCHEMA:
            raise CnnlabError(f"{path} has schema {data['schema']!r}; this cnnlab reads 1 to {SCHEMA}: upgrade cnnlab")
        info = build(cls, data, what=str(path))
        if len(info.mean) != info.input_size[0] or len(info.std) != info.input_size[0] or not info.classes:
            raise CnnlabError(f"{path} is inconsistent (mean/std per channel, classes): the run directory is damaged")
        return info

    def write(self, run: Path) -> None:
        """Write data.json (schema 2) into a run directory, atomically."""
        write_json(Path(run) / "data.json", to_plain(self) | {"schema": SCHEMA})
