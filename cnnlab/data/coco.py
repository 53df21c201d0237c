"""COCO instances folders: a folder of images with a COCO JSON, read into box targets, and written from them.

The format every detection tool reads (Lin et al. 2014): `images` (id, file_name, width,
height), `annotations` (image_id, category_id, bbox as [x, y, width, height] in pixels, area,
iscrowd, and optionally segmentation) and `categories` (id, name). Category ids may be any
integers; classes are the categories sorted by id. An image without annotations is kept, as
background. Images of several sizes are letterboxed to one square (cnnlab.data.boxes), their boxes
moved with them.

Bad input is one line, or is left out and counted: a JSON that is empty, truncated or lacks a
section is refused; an annotation with a non-positive width or height, a box wholly outside its
image, an unknown category or image id is left out, as is an image file that is missing or
unreadable; a box reaching outside its image is clipped to it; crowd regions are left out of the
targets (they mark groups no single box covers). `CocoSet.left_out` says what and how many.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnlab.data.boxes import letterbox
from cnnlab.data.images import read_image, write_png
from cnnlab.errors import CnnlabError
from cnnlab.models.detector import AREA

#: The sections a COCO instances JSON must hold.
SECTIONS = ("images", "annotations", "categories")


@dataclass(frozen=True)
class CocoSet:
    """One COCO folder read: uint8 images (N, C, S, S), box rows (N, M, 6: with each annotation's `area`), the class names, and what was left out."""

    images: torch.Tensor
    targets: torch.Tensor
    classes: tuple[str, ...]
    left_out: Counter = field(default_factory=Counter)  # reason -> count (boxes and images)
    images_left_out: int = 0
    empty: tuple[str, ...] = ()  # categories no kept box has: classes still, that nothing teaches

    def summary(self, name: str) -> str:
        """Return one line saying what reading `name` left out and which classes have no box, or "" when all is well."""
        parts = [f"{count} {reason}" for reason, count in sorted(self.left_out.items()) if count]
        words = [f"left out {', '.join(parts)}"] if parts else []
        if self.empty:
            words.append(f"no box of {', '.join(self.empty[:8])}{' ...' if len(self.empty) > 8 else ''}")
        return f"{name}: {'; '.join(words)}" if words else ""


def find_json(path: Path) -> Path:
    """Return the COCO JSON that `coco:PATH` names: the file itself, or the one JSON in the folder."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise CnnlabError(f"{path} does not exist: give coco:FOLDER (images and one COCO JSON) or coco:FILE.json")
    found = sorted(path.glob("*.json")) or sorted((path / "annotations").glob("*.json"))
    if len(found) != 1:
        what = "no JSON" if not found else f"{len(found)} JSON files ({', '.join(p.name for p in found[:4])})"
        raise CnnlabError(f"{path} holds {what}: give coco:FOLDER/NAME.json, the instances file to read")
    return found[0]


def read_json(path: Path) -> dict[str, Any]:
    """Return a COCO JSON's contents checked for its three sections, or one line saying what is wrong with the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CnnlabError(f"cannot read {path} ({type(error).__name__}): give a readable COCO instances JSON") from None
    if not text.strip():
        raise CnnlabError(f"{path} is empty: give a COCO instances JSON (images, annotations, categories)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CnnlabError(f"{path} is not valid JSON ({error.msg} at line {error.lineno}): the file is truncated or "
                          "damaged; write it again") from None
    missing = [key for key in SECTIONS if not isinstance(data, dict) or not isinstance(data.get(key), list)]
    if missing:
        raise CnnlabError(f"{path} has no {', '.join(missing)} list: a COCO instances JSON holds images, annotations "
                          "and categories")
    return data


def _image_file(folder: Path, name: str) -> Path:
    """Return where an image's file_name lies: beside the JSON, in images/, or beside the annotations/ folder."""
    for candidate in (folder / name, folder / "images" / name, folder.parent / "images" / name, folder.parent / name):
        if candidate.is_file():
            return candidate
    return folder / name


def _channels(files: list[Path]) -> int:
    """Return 1 when every readable image is grey, else 3 (a colour image among grey ones keeps its colour)."""
    from PIL import Image

    for path in files:
        try:
            with Image.open(path) as image:  # the header only: no pixels are decoded
                if image.mode not in ("1", "L", "I;16", "I"):
                    return 3
        except OSError:
            continue
    return 1


def read_coco(path: str | Path, size: int | None = None, classes: tuple[str, ...] | None = None,
              channels: int | None = None) -> CocoSet:
    """Return the images and box targets of a COCO folder, letterboxed to size x size (default: their one size).

    `classes` and `channels` fix the class order and the channels (a test split read as its
    training split was). With `size`, each image is letterboxed as it is read, so a large folder
    holds only canvases of that size in memory.
    """
    source = find_json(Path(path))
    data = read_json(source)
    folder = source.parent
    if not all(isinstance(c, dict) and isinstance(c.get("id"), int) and not isinstance(c.get("id"), bool)
               for c in data["categories"]):
        raise CnnlabError(f"{source} has a category that is not an object with an integer id: every category needs "
                          "{\"id\": N, \"name\": ...}")
    categories = sorted(data["categories"], key=lambda c: c["id"])
    names = tuple(str(c.get("name", c.get("id"))) for c in categories)
    if classes is not None and names != classes:
        raise CnnlabError(f"{source} has the categories {', '.join(names)}, not the training set's {', '.join(classes)}: "
                          "give splits of one data set")
    index_of = {c.get("id"): k for k, c in enumerate(categories)}
    left_out: Counter = Counter()
    entries = [e for e in data["images"] if isinstance(e, dict) and isinstance(e.get("id"), int | str)
               and "file_name" in e]
    if len(entries) < len(data["images"]):
        left_out["image entries without id or file_name"] += len(data["images"]) - len(entries)
    files = [_image_file(folder, str(e["file_name"])) for e in entries]
    channels = channels or _channels(files)
    # Each image read: its pixels (letterboxed at once when the size is known), placement and own (H, W).
    pixels: dict[Any, tuple[torch.Tensor, Any, tuple[int, int]]] = {}
    for entry, file in zip(entries, files, strict=True):
        image = read_image(file, channels) if file.is_file() else None
        if image is None:
            left_out["missing or unreadable images"] += 1
            continue
        own = (int(image.shape[1]), int(image.shape[2]))
        pixels[entry["id"]] = (*letterbox(image, size), own) if size is not None else (image, None, own)
    if not pixels:
        raise CnnlabError(f"{source} names {len(entries)} images and none could be read from {folder}: "
                          "put the image files beside the JSON (or in images/)")
    if size is None:
        sizes = {own for _, _, own in pixels.values()}
        if len(sizes) > 1 or next(iter(sizes))[0] != next(iter(sizes))[1]:
            raise CnnlabError(f"{source} holds images of {len(sizes)} sizes (or not square): letterbox them to N x N "
                              "with input_size=N (cnnlab data export: --input-size N)")
        size = next(iter(sizes))[0]
    rows: dict[Any, list[list[float]]] = {key: [] for key in pixels}
    for note in data["annotations"]:
        reason = _annotation_problem(note, pixels, index_of)
        if reason:
            left_out[reason] += 1
            continue
        height, width = pixels[note["image_id"]][2]
        x, y, w, h = (float(v) for v in note["bbox"])
        x1, y1 = max(x, 0.0), max(y, 0.0)
        x2, y2 = min(x + w, float(width)), min(y + h, float(height))
        if x2 - x1 < 1 or y2 - y1 < 1:
            left_out["boxes outside their image"] += 1
            continue
        rows[note["image_id"]].append([float(index_of[note["category_id"]]), x1, y1, x2, y2, _area(note, (x2 - x1) * (y2 - y1))])
    images, targets = [], []
    most = max(1, *(len(r) for r in rows.values()))
    for key, (image, placement, _) in pixels.items():
        canvas, placement = (image, placement) if placement is not None else letterbox(image, size)
        target = torch.full((most, 6), -1.0)
        if rows[key]:
            found = torch.tensor(rows[key], dtype=torch.float64)
            # The area scales with the image (scale squared), whatever the clipping did to the box.
            target[: len(found)] = torch.cat([found[:, :1], placement.forward(found[:, 1:5]),
                                              found[:, AREA:] * placement.scale ** 2], 1).float()
        images.append(canvas)
        targets.append(target)
    present = {int(r[0]) for found in rows.values() for r in found}
    empty = tuple(n for k, n in enumerate(names) if k not in present)
    return CocoSet(torch.stack(images), torch.stack(targets), names, +left_out,
                   left_out["missing or unreadable images"], empty)


def _number(value: Any) -> bool:
    """Return whether a JSON value is a finite number (not a boolean, not NaN or infinite)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _area(note: dict[str, Any], box_area: float) -> float:
    """Return the annotation's own `area` (its mask's, which COCO's area bands use), or its box's when it has none."""
    area = note.get("area")
    return float(area) if _number(area) and area > 0 else box_area


def _annotation_problem(note: Any, pixels: dict[Any, torch.Tensor], index_of: dict[Any, int]) -> str:
    """Return why an annotation is left out ("" when it is kept)."""
    if not isinstance(note, dict):
        return "annotations that are not objects"
    if not isinstance(note.get("image_id"), int | str) or note.get("image_id") not in pixels:
        return "boxes of unknown or unread images"
    if not isinstance(note.get("category_id"), int) or note.get("category_id") not in index_of:
        return "boxes of unknown category ids"
    box = note.get("bbox")
    if (not isinstance(box, list | tuple) or len(box) != 4
            or not all(_number(v) for v in box)):
        return "annotations without an [x, y, w, h] bbox"
    if box[2] <= 0 or box[3] <= 0:
        return "boxes of zero or negative width or height"
    if note.get("iscrowd", 0):
        return "crowd regions"
    return ""


Save = Callable[[str, Callable[[Path], Any]], Path]


def save_directly(folder: Path) -> Save:
    """Return a `save` that writes each name under `folder` as it is (the command line passes its Output's write)."""

    def save(name: str, writer: Callable[[Path], Any]) -> Path:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        writer(target)
        return target

    return save


def write_coco(save: Save, prefix: str, images: torch.Tensor, targets: torch.Tensor, classes: tuple[str, ...]) -> Path:
    """Write uint8 images (N, C, H, W) as PREFIX/images/NNNNNN.png and their box rows (N, M, 5) as PREFIX/instances.json.

    `save(name, writer)` writes one file (cnnlab.runs.outputs.Output.write: atomically, never over a
    run's files); class k is category id k + 1, as COCO counts from 1. Returns the JSON's path.
    """
    entries, notes = [], []
    for index, (image, rows) in enumerate(zip(images, targets, strict=True)):
        file_name = f"{index:06d}.png"
        save(f"{prefix}/images/{file_name}", lambda path, image=image: write_png(image, path))
        entries.append({"id": index + 1, "file_name": file_name, "height": int(image.shape[1]), "width": int(image.shape[2])})
        for row in rows[rows[:, 0] >= 0].tolist():
            w, h = row[3] - row[1], row[4] - row[2]
            area = row[AREA] if len(row) > AREA else w * h
            notes.append({"id": len(notes) + 1, "image_id": index + 1, "category_id": int(row[0]) + 1,
                          "bbox": [round(v, 3) for v in (row[1], row[2], w, h)], "area": round(area, 3), "iscrowd": 0})
    data = {"info": {"description": "written by cnnlab data export"}, "images": entries, "annotations": notes,
            "categories": [{"id": k + 1, "name": name_} for k, name_ in enumerate(classes)]}
    return save(f"{prefix}/instances.json", lambda path: path.write_text(json.dumps(data)))
