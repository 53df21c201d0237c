"""Shared test settings: CPU only unless a test is marked gpu."""

import os

import pytest
import torch


def pytest_configure(config: pytest.Config) -> None:
    """Make device `auto` mean the CPU here and in every CLI the tests start, GPU machine or not.

    Tests marked gpu name their CUDA device; the rest compare CPU figures (bit-exact resume, eval
    against the summary to 1e-6), which cuDNN's kernels would not reproduce.
    """
    os.environ["CNNLAB_DEVICE"] = "cpu"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked gpu when no CUDA device is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def detection_run(tmp_path_factory: pytest.TempPathFactory):
    """Return a small yolo_v1 run on digit scenes (5 epochs of 1,200 canvases) that finds some boxes."""
    from cnnlab.cli import main

    run = tmp_path_factory.mktemp("detection") / "yolo"
    assert main(["train", "yolo_v1", "--data", "digits-det", "--out", str(run), "--recipe", "detection", "epochs=5",
                 "data.train_images=1200"]) == 0
    return run
