"""`cnnlab visualize` writes each picture a person can open."""

from pathlib import Path

from PIL import Image

from cnnlab.cli import main


def test_visualize_filters_features_and_kernels(capsys, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert main(["train", "--out", str(run_dir), "--epochs", "1"]) == 0
    for what in ("filters", "features"):
        assert main(["visualize", what, str(run_dir), "--out", str(tmp_path)]) == 0
        picture = Image.open(tmp_path / f"{what}.png")
        assert picture.size[0] >= 300 and len(set(picture.convert("L").getdata())) > 8  # a picture, not a blank
    Image.effect_noise((32, 32), 60).convert("RGB").save(tmp_path / "noise.png")
    assert main(["visualize", "kernels", str(tmp_path / "noise.png")]) == 0
    assert (tmp_path / "noise_kernels.png").stat().st_size > 5000
    capsys.readouterr()
    assert main(["visualize", "filters", str(tmp_path / "noise.png")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def _picture_ok(path: Path, width: int = 300) -> None:
    picture = Image.open(path)
    assert picture.size[0] >= width and len(set(picture.convert("L").getdata())) > 8  # a picture, not a blank


def test_visualize_exemplars_embedding_dream_and_style(capsys, tmp_path: Path) -> None:
    import json

    run_dir = tmp_path / "run"
    assert main(["train", "--out", str(run_dir), "--epochs", "1"]) == 0
    out = tmp_path / "ex"
    assert main(["visualize", "exemplars", str(run_dir), "--channels", "0-2", "--top", "3", "--count", "64", "--out", str(out)]) == 0
    _picture_ok(out / "exemplars.png")
    found = json.loads((out / "exemplars.json").read_text())
    assert sorted(found) == ["0", "1", "2"] and all(len(v) == 3 for v in found.values())
    assert main(["visualize", "embedding", str(run_dir), "--count", "100", "--out", str(tmp_path / "e")]) == 0
    _picture_ok(tmp_path / "e" / "embedding_pca.png")
    assert main(["visualize", "dream", str(run_dir), "--channels", "1", "--steps", "8", "--out", str(tmp_path / "d")]) == 0
    assert "channel mean activations: 1:" in capsys.readouterr().out
    _picture_ok(tmp_path / "d" / "dream.png", width=200)
    Image.effect_noise((32, 32), 60).convert("RGB").save(tmp_path / "noise.png")
    assert main(["visualize", "dream", str(run_dir), "--image", str(tmp_path / "noise.png"), "--steps", "3",
                 "--octaves", "2", "--out", str(tmp_path / "dd")]) == 0
    _picture_ok(tmp_path / "dd" / "dream.png", width=200)
    Image.linear_gradient("L").resize((48, 48)).convert("RGB").save(tmp_path / "content.png")
    assert main(["style", str(tmp_path / "content.png"), str(tmp_path / "noise.png"), "--size", "32", "--steps", "20",
                 "--out", str(tmp_path / "s")]) == 0
    assert "lower); content loss" in capsys.readouterr().out
    _picture_ok(tmp_path / "s" / "style.png")
    losses = json.loads((tmp_path / "s" / "style.json").read_text())
    assert losses["style_end"] < losses["style_start"]
    assert main(["style", str(tmp_path / "content.png"), str(tmp_path / "noise.png"), "--features", "vgg19=/nowhere.pth"]) == 2
    assert "no weights file" in capsys.readouterr().err
    assert main(["visualize", "exemplars", str(run_dir), "--channels", "0-999"]) == 2
    assert "--channels 999 is out of range" in capsys.readouterr().err
