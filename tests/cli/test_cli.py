"""The command line: outputs, JSON, and one-line errors with exit status 2."""

import json
import shutil
import subprocess
import sys

import pytest

from cnnlab import __version__
from cnnlab.cli import main


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse exits for --version and usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version(capsys) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"cnnlab {__version__}"


def test_arith_conv_same_stride_two(capsys) -> None:
    code, out, _ = run(capsys, "arith", "conv", "--input", "32x32", "--kernel", "3", "--stride", "2",
                       "--padding", "same", "--in-channels", "3", "--out-channels", "64", "--format", "json")
    result = json.loads(out)
    assert code == 0
    assert result["output"] == [16, 16]
    assert result["padding"] == [[0, 1], [0, 1]]  # TensorFlow: total 1, the smaller half before
    assert result["receptive_field"] == [3, 3] and result["jump"] == [2, 2]
    assert result["params"] == 64 * 3 * 9 + 64
    assert result["macs"] == 16 * 16 * 64 * 3 * 9
    # A 1D input makes a 1D layer: a 3-tap kernel over 3 channels.
    _, out, _ = run(capsys, "arith", "conv", "--input", "32", "--kernel", "3", "--stride", "2",
                    "--padding", "same", "--in-channels", "3", "--out-channels", "64", "--format", "json")
    assert json.loads(out)["params"] == 64 * 3 * 3 + 64


def test_arith_text_2d_conv(capsys) -> None:
    code, out, _ = run(capsys, "arith", "conv", "--input", "224x224", "--kernel", "3", "--padding", "1",
                       "--in-channels", "3", "--out-channels", "64")
    assert code == 0
    assert "output size      224x224" in out
    assert "1,792" in out and "86,704,128" in out


def test_arith_tconv_and_pool(capsys) -> None:
    _, out, _ = run(capsys, "arith", "tconv", "--input", "7", "--kernel", "4", "--stride", "2",
                    "--padding", "1", "--format", "json")
    assert json.loads(out)["output"] == [14]
    _, out, _ = run(capsys, "arith", "tconv", "--input", "7", "--kernel", "3", "--stride", "2",
                    "--padding", "same", "--format", "json")
    assert json.loads(out)["output"] == [14]
    _, out, _ = run(capsys, "arith", "pool", "--input", "112", "--kernel", "3", "--stride", "2",
                    "--ceil-mode", "--format", "json")
    assert json.loads(out)["output"] == [56]
    _, out, _ = run(capsys, "arith", "pool", "--input", "8", "--kernel", "2", "--format", "json")
    assert json.loads(out)["output"] == [4]  # pooling stride defaults to the kernel


@pytest.mark.parametrize(
    "argv, message",
    [
        (["arith", "conv", "--input", "3", "--kernel", "5"], "larger than the padded input"),
        (["arith", "conv", "--input", "-4"], "must hold positive sizes"),
        (["arith", "conv", "--input", "32", "--padding", "sideways"], "unknown padding policy"),
        (["arith", "conv", "--input", "3y3"], "malformed"),
        (["summary", "torchvision.models:vgg16", "--input", "3x22a"], "malformed"),
        (["summary", "nosuchmodel", "--input", "3x32x32"], "unknown model 'nosuchmodel'"),
        (["arith", "spin", "--input", "3"], "'spin' is not one of conv, tconv, pool"),
        (["arith", "conv"], "required"),
        (["arith", "conv", "--input", "32", "--out-channels", "-3"], "must be >= 1"),
        (["arith", "conv", "--input", "32", "--padding", "-1"], "padding must be >= 0"),
        (["train", "--epochs", "0"], "must be >= 1"),
        (["train", "--batch-size", "0"], "must be >= 1"),
        (["train", "--lr", "-1"], "must be > 0"),
        (["rf", "resnet18", "--input", "3x32x32", "--erf", "--samples", "0"], "must be >= 1"),
        (["summary", "os:getcwd", "--input", "3x8x8"], "not an nn.Module"),
    ],
)
def test_bad_input_is_one_line_exit_two(capsys, argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err and out == ""


def test_summary_json_of_vgg16(capsys) -> None:
    code, out, _ = run(capsys, "summary", "torchvision.models:vgg16", "--input", "3x224x224", "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert data["total_params"] == 138_357_544
    assert data["activation_elements"] == 15_237_608
    assert data["total_macs"] == pytest.approx(15.47e9, rel=0.005)
    assert {"name", "type", "output_shape", "params", "macs", "receptive_field"} <= set(data["layers"][0])


def test_summary_table_and_csv(capsys) -> None:
    code, out, _ = run(capsys, "summary", "torchvision.models:resnet18", "--input", "3x64x64")
    assert code == 0 and "layer1.0.conv1" in out and "11,689,512" in out
    code, out, _ = run(capsys, "summary", "torchvision.models:resnet18", "--input", "3x64x64", "--format", "csv")
    assert code == 0 and out.splitlines()[1].startswith("conv1,Conv2d,64x32x32")


def test_rf_with_effective_field(capsys) -> None:
    code, out, _ = run(capsys, "rf", "torchvision.models:alexnet", "--input", "3x224x224", "--erf",
                       "--layer", "features.12", "--samples", "1")
    assert code == 0
    assert "features.12" in out and "195x195" in out  # AlexNet's last pool sees 195 px
    assert "effective receptive field" in out


@pytest.mark.skipif(shutil.which("cnnlab") is None and not (sys.prefix and shutil.which("cnnlab", path=f"{sys.prefix}/bin")),
                    reason="console script not installed")
def test_console_script_error_has_no_traceback() -> None:
    script = shutil.which("cnnlab", path=f"{sys.prefix}/bin") or shutil.which("cnnlab")
    done = subprocess.run([script, "arith", "conv", "--input", "3", "--kernel", "5"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_models_lists_the_zoo_as_json(capsys) -> None:
    code, out, _ = run(capsys, "models", "resnet*", "--format", "json")
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert rows["resnet50"]["params"] == 25_557_032 and round(rows["resnet50"]["gmacs"], 3) == 4.089
    assert rows["resnet50"]["year"] == 2016 and rows["resnet50"]["family"] == "resnet"
    code, _, err = run(capsys, "models", "nothing*")
    assert code == 2 and "no model matches" in err


def test_models_json_lists_the_whole_zoo(capsys) -> None:
    code, out, _ = run(capsys, "models", "--format", "json")
    rows = {row["name"]: row for row in json.loads(out)}
    # One name per architecture of the course, with the DESIGN table's counts.
    expected = {
        "lenet5": 61_706, "lenet5_1998": 60_000, "alexnet": 61_100_840, "alexnet_2012": 60_965_224,
        "zfnet": None, "vgg16": 138_357_544, "vgg16_bn": 138_365_992, "nin": None, "all_cnn_c": None,
        "googlenet": 6_624_904, "inception_v3": 27_161_264, "resnet18": 11_689_512,
        "resnet152": 60_192_808, "wide_resnet50_2": 68_883_240, "resnext50_32x4d": 25_028_904,
        "resnet20": 269_722, "wrn28_10": 36_479_194, "preact_resnet18": None, "highway_net": None,
        "densenet121": 7_978_856, "densenet_bc_100_k12": 769_162, "mobilenet_v1": 4_231_976,
        "mobilenet_v2": 3_504_872, "mobilenet_v3_small": 2_542_856, "mobilenet_v3_large": 5_483_032,
        "se_resnet50": 28_088_024, "efficientnet_b0": 5_288_548, "efficientnet_b7": None,
        "xception": 22_855_952, "convnext_tiny": 28_589_128, "convnext_base": None,
        "course_cifar100": 550_596, "unet": 31_030_658,
    }
    assert code == 0
    for name, params in expected.items():
        assert name in rows, name
        if params is not None:
            assert rows[name]["params"] == params, name
    assert rows["lenet5"]["macs"] == pytest.approx(0.00042e9, rel=0.01)


def test_summary_of_zoo_and_torchvision_names(capsys) -> None:
    for name in ("resnet50", "tv/resnet50"):
        code, out, _ = run(capsys, "summary", name, "--input", "3x224x224", "--format", "json")
        assert code == 0 and json.loads(out)["total_params"] == 25_557_032


def test_train_into_an_existing_file_is_refused(capsys, tmp_path) -> None:
    target = tmp_path / "taken"
    target.write_text("keep me")
    code, _, err = run(capsys, "train", "--out", str(target), "--epochs", "1")
    assert code == 2 and "is an existing file" in err and target.read_text() == "keep me"


def test_rf_erf_on_a_batchnorm_zoo_model(capsys) -> None:
    # The CLI's own copy runs in eval mode: BatchNorm on a batch of one is fine there.
    code, out, _ = run(capsys, "rf", "resnet18", "--input", "3x32x32", "--erf", "--layer", "layer1", "--samples", "1")
    assert code == 0 and "effective receptive field" in out


def test_train_on_an_image_folder(capsys, tmp_path) -> None:
    from PIL import Image

    for name, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (8, 8), colour).save(tmp_path / "data" / name / f"{i}.png")
    out_dir = tmp_path / "run"
    code, out, _ = run(capsys, "train", "--data", f"folder:{tmp_path / 'data'}", "--out", str(out_dir), "--epochs", "2")
    assert code == 0 and "test accuracy" in out
    assert json.loads((out_dir / "data.json").read_text())["classes"] == ["blue", "red"]


def test_train_on_missing_data_is_one_line(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CNNLAB_DATA", str(tmp_path / "nothing"))
    monkeypatch.setattr("cnnlab.data.files.CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr("cnnlab.data.cifar.URL", "http://127.0.0.1:9/")  # no download attempt leaves the machine
    code, _, err = run(capsys, "train", "--data", "cifar10", "--out", str(tmp_path / "run"))
    assert code == 2 and "cifar10 not found in" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # nothing is created before the data is found


def test_eval_and_predict_commands(capsys, tmp_path) -> None:
    from PIL import Image

    run_dir = tmp_path / "run"
    assert run(capsys, "train", "--out", str(run_dir), "--epochs", "3")[0] == 0
    code, out, _ = run(capsys, "eval", str(run_dir), "--format", "json")
    assert code == 0 and json.loads(out)["images"] == 359
    assert (run_dir / "confusion.png").stat().st_size > 1000 and (run_dir / "eval.json").exists()
    Image.new("L", (8, 8), 0).save(tmp_path / "blank.png")
    code, out, _ = run(capsys, "predict", str(run_dir), str(tmp_path / "blank.png"), "--top-k", "2")
    assert code == 0 and out.count("%") == 2
    code, _, err = run(capsys, "eval", str(tmp_path))
    assert code == 2 and "no data.json" in err


def test_unknown_device_is_one_line(capsys, tmp_path) -> None:
    code, _, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--device", "gpu")
    assert code == 2 and "'gpu' is no device" in err and len(err.strip().splitlines()) == 1
