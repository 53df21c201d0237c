"""The DataLoader path: streamed batches train exactly like resident ones; files are read lazily."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from cnnlab.data import placement
from cnnlab.data.loader import StreamedImages
from cnnlab.errors import CnnlabError
from cnnlab.train.run import train_run

QUIET = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives for the test session


CATALOGUE = ("augment=[{op: flip}, {op: rotate, degrees: 10}, {op: brightness}, {op: randaugment, n: 1}, "
             "{op: cutout, size: 3}, {op: mixup, alpha: 1.0}]")


@pytest.mark.parametrize("augment", ["augment.crop_padding=1", CATALOGUE])
def test_streamed_and_resident_training_agree(tmp_path, augment: str) -> None:
    overrides = ("epochs=2", "deterministic=true", augment, "workers=0")
    resident = train_run(out=str(tmp_path / "resident"), overrides=(*overrides, "stream=false"), console=QUIET)
    streamed = train_run(out=str(tmp_path / "streamed"), overrides=(*overrides, "stream=true"), console=QUIET)
    # Same images, same order, same on-device augmentation: the same run, to rounding.
    assert streamed["test_loss"] == pytest.approx(resident["test_loss"], rel=1e-4)
    assert streamed["test_top1"] == pytest.approx(resident["test_top1"], abs=1 / 359)


def test_too_big_for_the_device_streams(monkeypatch) -> None:
    from cnnlab.data.sources import load
    data = load("digits").train
    cpu = torch.device("cpu")
    assert not placement.too_big(data, 16, 0, cpu)
    monkeypatch.setattr(placement, "RESIDENT_BUDGET_CPU", len(data) * 16 * 16 - 1)  # one byte short
    assert placement.too_big(data, 16, 0, cpu)
    placed = placement.place(data, 16, 0, stream=True)
    assert isinstance(placed, StreamedImages) and placed.size == 16
    images, labels = next(placed.batches([torch.arange(4)], torch.device("cpu")))
    assert images.shape == (4, 1, 16, 16) and images.dtype == torch.uint8  # resized in the worker


def _folder(root, sizes) -> None:
    for index, size in enumerate(sizes):
        folder = root / ("dark" if index % 2 else "light")
        folder.mkdir(parents=True, exist_ok=True)
        shade = 40 if index % 2 else 220
        Image.new("RGB", (size, size + index % 3), (shade, shade, shade)).save(folder / f"{index}.png")


def test_folder_files_stream_with_workers_and_skip_unreadable(tmp_path) -> None:
    root = tmp_path / "pictures"
    _folder(root, [12, 16, 20, 24] * 10)  # mixed sizes: fine when streamed with a resize
    (root / "dark" / "broken.png").write_bytes(b"not a png")
    # Formats torchvision.io cannot decode, or decodes to other than 8-bit RGB, read as the eager path reads them.
    Image.new("RGB", (14, 14), (40, 40, 40)).save(root / "dark" / "extra.bmp")
    Image.fromarray(np.full((15, 15), 60000, dtype=np.uint16)).save(root / "light" / "deep.png")
    out = tmp_path / "run"
    result = train_run(data=f"folder:{root}", out=str(out), recipe_name="default",
                       overrides=("stream=true", "workers=2", "input_size=16", "epochs=3", "batch_size=8",
                                  "optim.lr=0.05"), console=QUIET)
    data = json.loads((out / "data.json").read_text())
    assert data["input_size"] == [3, 16, 16] and data["classes"] == ["dark", "light"]
    assert result["test_images"] == 9 and result["test_top1"] >= 0.75  # light vs dark is easy
    assert result["skipped_images"] == 1  # counted once, although its part was read every epoch
    from cnnlab.train.evaluation import evaluate_run

    evaluation = evaluate_run(out, checkpoint="last")  # the same held-out files, streamed and resized again
    assert result["test_images"] - 1 <= evaluation["images"] <= result["test_images"]  # less the broken file, if there
    assert evaluation["loss"] == pytest.approx(result["test_loss"], rel=1e-4)
    with pytest.raises(CnnlabError, match="set input_size=N"):
        train_run(data=f"folder:{root}", out=str(tmp_path / "r2"), recipe_name="default",
                  overrides=("stream=true", "epochs=1"), console=QUIET)
