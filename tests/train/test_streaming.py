"""The DataLoader path: streamed batches train exactly like resident ones; files are read lazily."""

import json
import os

import pytest
import torch
from PIL import Image
from rich.console import Console

from cnnlab.data.loader import StreamedImages
from cnnlab.errors import CnnlabError
from cnnlab.train import run as run_module
from cnnlab.train.run import train_run

QUIET = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - lives for the test session


def test_streamed_and_resident_training_agree(tmp_path) -> None:
    overrides = ("epochs=2", "deterministic=true", "augment.crop_padding=1", "workers=0")
    resident = train_run(out=str(tmp_path / "resident"), overrides=(*overrides, "stream=false"), console=QUIET)
    streamed = train_run(out=str(tmp_path / "streamed"), overrides=(*overrides, "stream=true"), console=QUIET)
    # Same images, same order, same on-device augmentation: the same run, to rounding.
    assert streamed["test_loss"] == pytest.approx(resident["test_loss"], rel=1e-4)
    assert streamed["test_top1"] == pytest.approx(resident["test_top1"], abs=1 / 359)


def test_too_big_for_the_device_streams(monkeypatch) -> None:
    from cnnlab.data.sources import load
    from cnnlab.train.recipe import load_recipe

    data = load("digits").train
    recipe = load_recipe("digits", ["input_size=16"])
    assert type(run_module._placed(data, recipe, torch.device("cpu"))).__name__ == "ImageSet"
    monkeypatch.setattr(run_module, "RESIDENT_BUDGET_CPU", len(data) * 16 * 16 - 1)  # one byte short
    placed = run_module._placed(data, recipe, torch.device("cpu"))
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
    out = tmp_path / "run"
    result = train_run(data=f"folder:{root}", out=str(out), recipe_name="default",
                       overrides=("stream=true", "workers=2", "input_size=16", "epochs=3", "batch_size=8",
                                  "optim.lr=0.05"), console=QUIET)
    data = json.loads((out / "data.json").read_text())
    assert data["input_size"] == [3, 16, 16] and data["classes"] == ["dark", "light"]
    assert result["test_images"] == 8 and result["test_top1"] >= 0.75  # light vs dark is easy
    assert result["skipped_images"] == 1  # counted once, although its part was read every epoch
    with pytest.raises(CnnlabError, match="set input_size=N"):
        train_run(data=f"folder:{root}", out=str(tmp_path / "r2"), recipe_name="default",
                  overrides=("stream=true", "epochs=1"), console=QUIET)
