"""`cnnlab augment`: a grid for every op of the catalogue, the policy forms, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.data.augment import OPS


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("rgb")
    g = torch.Generator().manual_seed(0)
    for label in ("red", "blue"):
        (root / label).mkdir()
        for i in range(4):
            coarse = torch.rand(3, 4, 4, generator=g)
            image = torch.nn.functional.interpolate(coarse[None], size=(24, 24), mode="bilinear")[0]
            Image.fromarray((image.permute(1, 2, 0) * 255).byte().numpy()).save(root / label / f"{i}.png")
    return f"folder:{root}"


def _picture_ok(path: Path) -> None:
    picture = Image.open(path)
    assert picture.size[0] >= 200 and len(torch.from_numpy(np.asarray(picture.convert("L")).copy()).unique()) > 16  # a picture, not a blank


@pytest.mark.parametrize("tag", sorted(OPS))
def test_every_op_draws_a_grid(rgb_folder: str, tag: str, tmp_path: Path) -> None:
    policy = f"{tag}:size=16" if tag in ("center_crop", "random_crop") else tag
    assert main(["augment", "--data", rgb_folder, "--policy", policy, "--n", "3", "--draws", "2", "--out", str(tmp_path)]) == 0
    _picture_ok(tmp_path / "augment.png")
    written = json.loads((tmp_path / "augment.json").read_text())
    assert written["augment"][0]["op"] == tag and len(written["images"]) == 3


def test_a_recipe_a_yaml_list_and_parameters(capsys, tmp_path: Path) -> None:
    out = tmp_path / "augment.png"
    assert main(["augment", "--data", "digits", "--policy", "resnet-cifar", "--n", "4", "--out", str(tmp_path)]) == 0
    assert "flip -> translate" in capsys.readouterr().out
    assert main(["augment", "--data", "digits", "--policy", "[{op: rotate, degrees: 40}, {op: cutout, size: 3}]",
                 "--n", "4", "--out", str(tmp_path)]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["augment"][0] == {"op": "rotate", "p": 1.0, "degrees": 40}
    assert main(["augment", "--data", "digits", "--policy", "rotate:degrees=40:p=0.5", "--n", "4", "--out", str(tmp_path)]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["augment"][0]["p"] == 0.5
    assert main(["augment", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(f"  {tag} " in listing for tag in OPS) and "randaugment" in listing and "n=2, magnitude=9.0" in listing


@pytest.mark.parametrize("policy, message", [
    ("spin", "op 'spin' is not one of flip, vflip"),
    ("rotate:degrees=-1", "augment rotate degrees=-1.0 must be >= 0"),
    ("flip:p=1.5", "augment flip p=1.5 must lie in [0, 1]"),
    ("rotate:turns=2", "unknown recipe key augment.rotate.turns"),
    ("hue", "augment hue needs RGB images but these have 1 channel(s): leave hue out of augment"),
    ("center_crop:size=9", "center_crop size=9 is larger than the 8x8 images: use size <= 8"),
    ("rotate:degrees", "'degrees' must look like key=value, e.g. rotate:degrees=30"),
])
def test_bad_policies_are_one_line_errors(capsys, policy: str, message: str, tmp_path: Path) -> None:
    assert main(["augment", "--data", "digits", "--policy", policy, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing written, not even an empty folder
