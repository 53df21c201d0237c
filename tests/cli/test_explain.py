"""`cnnlab explain`, `sanity` and `faithfulness` end to end on a small trained run (digits)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from cnnlab.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("explain") / "run"
    assert main(["train", "--out", str(run_dir), "--epochs", "2"]) == 0
    return run_dir


def test_explain_writes_overlays_maps_and_json(capsys, trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "maps"
    code, text, err = run(capsys, "explain", str(trained), "--method", "gradcam", "--count", "2", "--out", str(out))
    assert code == 0, err
    assert "explained 2 images" in text
    for name in ("test0000", "test0001"):
        assert (out / f"{name}_gradcam.png").stat().st_size > 2000
        record = json.loads((out / f"{name}.json").read_text())
        assert record["methods"]["gradcam"]["layer"].startswith("model.") and 0 < record["probability"] <= 1
        maps = load_file(str(out / f"{name}.safetensors"))
        assert maps["gradcam"].shape[-2:] == (8, 8)


def test_explain_a_given_target(capsys, trained: Path, tmp_path: Path) -> None:
    code, _, err = run(capsys, "explain", str(trained), "--method", "saliency", "--target", "3", "--count", "1", "--out", str(tmp_path))
    assert code == 0, err
    record = json.loads((tmp_path / "test0000.json").read_text())
    assert record["target"] == 3 and 0 < record["probability"] < 1


def test_explain_grid_of_methods(capsys, trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid"
    code, _, err = run(capsys, "explain", str(trained), "--method", "saliency,integrated_gradients,gradcam,occlusion",
                       "--count", "1", "--option", "steps=8", "--out", str(out))
    assert code == 0, err
    assert (out / "test0000_grid.png").stat().st_size > 2000
    record = json.loads((out / "test0000.json").read_text())
    assert record["methods"]["integrated_gradients"]["options"]["steps"] == 8
    assert set(load_file(str(out / "test0000.safetensors"))) == {"saliency", "integrated_gradients", "gradcam", "occlusion"}


def test_sanity_and_faithfulness_commands(capsys, trained: Path, tmp_path: Path) -> None:
    code, text, err = run(capsys, "sanity", str(trained), "--method", "saliency,smoothgrad", "--count", "3",
                          "--option", "samples=4", "--random-labels", str(trained), "--out", str(tmp_path / "s"))
    assert code == 0, err
    report = json.loads((tmp_path / "s" / "sanity.json").read_text())
    rows = report["methods"]["saliency"]["cascading"]
    assert rows[0]["layer"] == "original" and len(rows) > 2 and (tmp_path / "s" / "sanity.png").stat().st_size > 5000
    assert "spearman |map|" in text and "random labels: spearman 1.000" in text  # the same run: identical maps
    assert report["methods"]["smoothgrad"]["data_randomization"]["ssim"] > 0.999
    code, text, err = run(capsys, "faithfulness", str(trained), "--method", "saliency,gradcam,smoothgrad", "--count", "3",
                          "--steps", "8", "--option", "samples=4", "--out", str(tmp_path / "f"))
    assert code == 0, err
    table = json.loads((tmp_path / "f" / "faithfulness.json").read_text())
    assert [r["method"] for r in table["rows"]] == ["saliency", "gradcam", "smoothgrad"]
    assert all("max_sensitivity" in r for r in table["rows"])
    assert "deletion" in text and "gradcam" in text


def test_explain_errors_are_one_line(capsys, trained: Path) -> None:
    code, _, err = run(capsys, "explain", str(trained), "--method", "gradkam")
    assert code == 2 and "did you mean gradcam" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "explain", str(trained), "--method", "gradcam", "--layer", "nope")
    assert code == 2 and "has no layer 'model.nope'" in err
    code, _, err = run(capsys, "explain", str(trained), "--option", "steps")
    assert code == 2 and "'steps' must look like key=value" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "explain", str(trained), "--method", "integrated_gradients", "--option", "step=64")
    assert code == 2 and "no chosen method takes the option 'step'" in err
    code, out, _ = run(capsys, "explain", str(trained), "--list")
    assert code == 0 and "kernel_shap" in out


def test_explain_image_files(capsys, trained: Path, tmp_path: Path) -> None:
    """Image files are read, sized and prepared as the run's images were (digits: 8x8 grey)."""
    from PIL import Image

    Image.new("L", (8, 8), 0).save(tmp_path / "blank.png")
    Image.new("L", (16, 16), 200).save(tmp_path / "bright.png")  # resized to the run's 8x8
    code, _, err = run(capsys, "explain", str(trained), "--method", "saliency", "--images", str(tmp_path / "blank.png"),
                       str(tmp_path / "bright.png"), "--out", str(tmp_path / "out"))
    assert code == 0, err
    for name in ("blank", "bright"):
        assert load_file(str(tmp_path / "out" / f"{name}.safetensors"))["saliency"].shape == (1, 8, 8)
        assert (tmp_path / "out" / f"{name}_saliency.png").stat().st_size > 2000
    (tmp_path / "broken.png").write_bytes(b"not an image")
    code, _, err = run(capsys, "explain", str(trained), "--images", str(tmp_path / "broken.png"))
    assert code == 2 and "cannot read image" in err
