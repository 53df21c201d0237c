"""Tiny digit runs for the report tests: three runs that differ in one recipe key, with diagnostics."""

from pathlib import Path

import pytest

from cnnlab.cli import main


@pytest.fixture(scope="session")
def digit_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Return three 2-epoch digit runs differing only in optim.lr; the first wrote its report through report=true."""
    home = tmp_path_factory.mktemp("report-runs")
    runs = []
    for index, lr in enumerate(("0.003", "0.001", "0.0003")):
        run = home / f"lr{lr}"
        extra = ["report=true"] if index == 0 else []
        assert main(["train", "--out", str(run), "--epochs", "2", f"optim.lr={lr}", "diagnostics=true", *extra]) == 0
        runs.append(run)
    return runs
