"""`cnnlab visualize` writes each picture a person can open."""

from pathlib import Path

from PIL import Image

from cnnlab.cli import main


def test_visualize_filters_features_and_kernels(capsys, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "--out", str(run_dir), "--epochs", "1"]) == 0
    for what in ("filters", "features"):
        out = tmp_path / f"{what}.png"
        assert main(["visualize", str(run_dir), what, "--out", str(out)]) == 0
        picture = Image.open(out)
        assert picture.size[0] >= 300 and len(set(picture.convert("L").getdata())) > 8  # a picture, not a blank
    Image.effect_noise((32, 32), 60).convert("RGB").save(tmp_path / "noise.png")
    assert main(["visualize", str(tmp_path / "noise.png"), "kernels"]) == 0
    assert (tmp_path / "noise_kernels.png").stat().st_size > 5000
    capsys.readouterr()
    assert main(["visualize", str(tmp_path / "noise.png"), "filters"]) == 2
    assert "not a run directory" in capsys.readouterr().err
