"""The GPU speed benchmarks run end to end from a clean checkout (here on the CPU, on digits)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
POSITIVE = ("seconds", "ratio", "per_second", "gmacs", "target", "images", "steps", "batch", "runs")


def figures_are_finite_and_positive(value: object, key: str = "") -> int:
    """Assert every number of a benchmark's JSON is finite, and every time, rate, ratio or count is > 0; return how many."""
    if isinstance(value, dict):
        return sum(figures_are_finite_and_positive(v, str(k)) for k, v in value.items())
    if isinstance(value, list):
        return sum(figures_are_finite_and_positive(v, key) for v in value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    assert math.isfinite(value), (key, value)
    if any(word in key for word in POSITIVE) and "error" not in key:
        assert value > 0, (key, value)
    return 1


@pytest.mark.parametrize("script, extra", [
    ("speedrun_cifar10.py", ["input_size=32", "batch_size=256"]),
    ("mnist_time_to_accuracy.py", ["batch_size=256"]),
])
def test_speed_benchmark_prints_its_json(script: str, extra: list[str]) -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / script), "--runs", "2", "--epochs", "1", "--data", "digits",
               "--device", "cpu", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert figures_are_finite_and_positive(result) > 3
    assert {"mean_acc", "std_acc", "mean_seconds", "runs", "device", "torch", "load_seconds"} <= set(result)
    assert result["runs"] == 2 and result["device"] == "cpu" and 0.0 <= result["mean_acc"] <= 1.0
    assert result["mean_seconds"] > 0 and len(result["accuracies"]) == 2


def test_throughput_benchmark_prints_ratios() -> None:
    pytest.importorskip("timm")
    command = [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--models", "resnet18", "--modes", "eager",
               "--windows", "2", "--steps", "1", "--warmup", "1", "--batch", "2", "--size", "32", "--dtype", "fp32",
               "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert figures_are_finite_and_positive(result) > 3
    row = result["results"][0]
    assert result["timm"] and row["model"] == "resnet18" and row["train_ratio"] > 0 and row["infer_ratio"] > 0
    assert row["gmacs_per_image"] == pytest.approx(1.814 * (32 / 224) ** 2, rel=0.1)  # ResNet-18's 1.81 GMACs, scaled


def test_explain_throughput_prints_ratios_against_the_peers() -> None:
    pytest.importorskip("captum")
    pytest.importorskip("pytorch_grad_cam")
    command = [sys.executable, str(ROOT / "benchmarks" / "explain_throughput.py"), "--quick", "--device", "cpu",
               "--methods", "saliency,gradcam,scorecam,integrated_gradients"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert figures_are_finite_and_positive(result) > 3
    assert result["benchmark"] == "explain_throughput" and result["device"] == "cpu" and result["cpu"]
    peers = {(r["method"], r["peer"]) for r in result["results"]}
    assert ("saliency", "captum.attr.Saliency") in peers and ("scorecam", "pytorch_grad_cam.ScoreCAM") in peers
    for row in result["results"]:
        assert row["ratio"] > 0 and isinstance(row["meets"], bool) and row["target"] > 0
    assert result["ig_completeness"][0]["median_relative_error"]["cnnlab"] >= 0


def test_augment_throughput_prints_every_contender() -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "augment_throughput.py"), "--batch", "8", "--rounds", "1",
               "--ops", "flip,rotate,gaussian_blur,pca_lighting,mixup,randaugment", "--device", "cpu"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert figures_are_finite_and_positive(result) > 3
    rows = {row["op"]: row for row in result["ops"]}
    assert set(rows["rotate"]["images_per_second"]) == {"ours", "torchvision", "kornia"}
    assert rows["gaussian_blur"]["ratio_kornia"] > 0 and rows["pca_lighting"]["met"] is None
    assert result["ops_without_peer"] == ["pca_lighting"]
    policy = result["default_cifar_policy"]
    assert policy["precision"] == "fp32" and 0 < policy["policy_share_of_step"] == pytest.approx(
        policy["policy_seconds"] / policy["resnet20_step_seconds"])


def test_augment_study_runs_its_three_arms() -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "augment_recipes.py"), "--data", "digits", "--model",
               "small_cnn", "--seeds", "0,1", "epochs=1", "data.train_images=100"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert figures_are_finite_and_positive(result) > 3
    assert list(result["arms"]) == ["none", "flip+crop", "flip+crop+ra+cutout"] and result["train_images"] == 100
    assert all(len(arm["runs"]) == 2 and 0 <= arm["mean_top1"] <= 1 for arm in result["arms"].values())


@pytest.mark.slow  # three detectors and a backbone run: minutes
@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "train-images-idx3-ubyte.gz").exists(),
                    reason="the backbone trains on MNIST from ../shared/data")
def test_detection_benchmark_prints_its_verdict() -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "detection_mnist.py"), "--data", "digits-det", "--epochs", "1",
               "--backbone-epochs", "1", "--backbone-images", "128", "--train-images", "128", "--timed-images", "32",
               "--data-dir", str(ROOT.parent / "shared" / "data")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    for model in ("yolo_v1", "centernet", "tv/fasterrcnn_mobilenet_v3_large_fpn"):
        assert result[model]["inference_images_per_second"] > 0 and 0 <= result[model]["test_ap50"] <= 1
    assert result["verdict"].startswith("YOLO v1 is") and isinstance(result["yolo_faster"], bool)
