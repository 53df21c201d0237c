"""The report and the comparison page in a real browser: no console errors, no requests, every section and image."""

import json
import os
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.report.run_report import SECTIONS
from tests.report.support_browser import open_page


def _keep(screenshot: Path) -> None:
    """Copy the screenshot where CNNLAB_SCREENSHOTS says, so a person can look at it after the run."""
    folder = os.environ.get("CNNLAB_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / screenshot.name).write_bytes(screenshot.read_bytes())


def _check_report(page: Path, run: Path, screenshot: Path) -> None:
    seen = open_page(page, screenshot)
    assert seen.console_errors == [] and seen.failed_requests == []
    assert [url for url in seen.requests if not url.startswith(("file:", "data:"))] == []  # nothing from a network
    assert seen.section_ids == list(SECTIONS)
    assert len(seen.images) >= 8 and all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in seen.images), seen.images
    summary = json.loads((run / "summary.json").read_text())
    assert str(summary["test_top1"]) in seen.text  # the figure exactly as summary.json holds it
    assert f"{100 * summary['test_top1']:.2f} %" in seen.text
    assert "Not recorded" not in seen.text or not (run / "diagnostics.jsonl").is_file()
    assert screenshot.stat().st_size > 50_000
    _keep(screenshot)


def test_report_written_by_train_opens_cleanly_in_chromium(digit_runs, tmp_path) -> None:
    run = digit_runs[0]
    _check_report(run / "report.html", run, tmp_path / "report-digits.png")


def test_comparison_of_three_runs_opens_cleanly_in_chromium(digit_runs, tmp_path) -> None:
    out = tmp_path / "compare.html"
    assert main(["compare", *map(str, digit_runs), "--out", str(tmp_path)]) == 0
    seen = open_page(out, tmp_path / "compare-digits.png")
    assert seen.console_errors == [] and seen.failed_requests == []
    assert seen.section_ids == ["table", "curves"]
    assert all(i["complete"] and i["width"] > 0 for i in seen.images) and len(seen.images) == 1
    assert "optim.lr" in seen.text and "epochs" not in seen.text.split("Recipes and figures")[1].split("test_top1")[0]
    for run in digit_runs:
        assert f"{100 * json.loads((run / 'summary.json').read_text())['test_top1']:.2f} %" in seen.text
    _keep(tmp_path / "compare-digits.png")


REAL_RUNS = [Path(p) for p in os.environ.get("CNNLAB_BROWSER_RUNS", "").split(",") if p]


@pytest.mark.slow
@pytest.mark.parametrize("run", REAL_RUNS, ids=[p.name for p in REAL_RUNS])
def test_report_of_a_real_run_opens_cleanly_in_chromium(run: Path, tmp_path) -> None:
    """Runs named in CNNLAB_BROWSER_RUNS (comma-separated): trained elsewhere, reported and opened here."""
    page = tmp_path / "report.html"
    data_dir = os.environ.get("CNNLAB_DATA_DIR")
    assert main(["report", str(run), "--out", str(tmp_path), *(["--data-dir", data_dir] if data_dir else [])]) == 0
    _check_report(page, run, tmp_path / f"report-{run.name}.png")
