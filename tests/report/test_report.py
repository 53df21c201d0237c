"""The report and comparison pages as files: sections, inline images, exact figures, refusals in one line."""

import base64
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.errors import CnnlabError
from cnnlab.report.compare import comparison_context
from cnnlab.report.facts import differing_keys, flatten
from cnnlab.report.run_report import SECTIONS, write_report


def _images(html: str) -> list[Image.Image]:
    sources = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert all(s.startswith("data:image/png;base64,") for s in sources), [s[:40] for s in sources]
    return [Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) for s in sources]


def _tree(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file() and p.name != "report.html"}


def test_report_is_one_self_contained_file_with_every_section(digit_runs, tmp_path) -> None:
    run = digit_runs[1]
    before = _tree(run)
    page = write_report(run, tmp_path / "page.html", methods=("gradcam", "saliency"))
    html = page.read_text()
    assert _tree(run) == before  # the run directory is read, never changed
    for section in SECTIONS:
        assert f'<section id="{section}">' in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from anywhere
    assert "<script" not in html  # the page works without JavaScript
    pictures = _images(html)
    assert len(pictures) >= 10 and all(p.width > 0 and p.height > 0 for p in pictures)
    summary = json.loads((run / "summary.json").read_text())
    assert f"<code>{summary['test_top1']}</code>" in html
    assert f"{100 * summary['test_top1']:.2f} %" in html
    assert "gradcam" in html and "saliency" in html and "diagnostics=true" in html
    assert html.count('class="card"') >= 8  # the mistakes and the exemplar channels


def test_compare_tabulates_only_the_key_that_differs(digit_runs, tmp_path) -> None:
    context = comparison_context(digit_runs)
    assert context["keys"] == ["optim.lr"]  # report=true on the first run changes no figure: not a difference
    assert [row["keys"] for row in context["rows"]] == [[0.003], [0.001], [0.0003]]
    out = tmp_path / "c.html"
    assert main(["compare", *map(str, digit_runs), "--out", str(out)]) == 0
    assert len(_images(out.read_text())) == 1


def _copy_with(run: Path, tmp_path: Path, name: str, **changes) -> Path:
    copy = tmp_path / name
    shutil.copytree(run, copy)
    data = json.loads((copy / "data.json").read_text())
    data.update(changes)
    (copy / "data.json").write_text(json.dumps(data))
    return copy


def test_compare_refuses_other_data_other_tasks_and_a_single_run(digit_runs, tmp_path, capsys) -> None:
    other = _copy_with(digit_runs[1], tmp_path, "on-mnist", spec="mnist")
    with pytest.raises(CnnlabError, match="compare runs of one data set"):
        comparison_context([digit_runs[0], other])
    segmentation = _copy_with(digit_runs[1], tmp_path, "seg", task="segmentation")
    assert main(["compare", str(digit_runs[0]), str(segmentation)]) == 2
    error = capsys.readouterr().err
    assert "compare runs of one task" in error and error.count("\n") == 1
    with pytest.raises(CnnlabError, match="at least two"):
        comparison_context(digit_runs[:1])


def test_report_refuses_an_unfinished_run_and_an_unknown_method(digit_runs, tmp_path, capsys) -> None:
    unfinished = tmp_path / "unfinished"
    shutil.copytree(digit_runs[2], unfinished)
    (unfinished / "summary.json").unlink()
    assert main(["report", str(unfinished)]) == 2
    assert "cnnlab train --resume" in capsys.readouterr().err
    assert main(["report", str(digit_runs[2]), "--method", "gradcamm", "--out", str(tmp_path / "x")]) == 2
    assert "did you mean gradcam" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_report_without_diagnostics_or_explanations_says_so(tmp_path) -> None:
    run = tmp_path / "plain"
    assert main(["train", "--out", str(run), "--epochs", "1"]) == 0
    assert main(["report", str(run), "--method", "none"]) == 0
    html = (run / "report.html").read_text()
    assert "Not recorded: train with <code>diagnostics=true</code>" in html
    assert "no explanation methods chosen" in html
    (run / "report.html").unlink()
    assert main(["train", "--resume", str(run), "report=true"]) == 0  # given on resume, it counts too
    assert (run / "report.html").stat().st_size > 10_000


def test_flatten_and_differing_keys() -> None:
    assert flatten({"a": 1, "b": {"c": 2, "d": {"e": [1, 2]}}}) == {"a": 1, "b.c": 2, "b.d.e": [1, 2]}
    recipes = [{"a": 1, "b": {"c": [1]}}, {"a": 1, "b": {"c": [2]}}, {"a": 1, "b": {"c": [1]}, "x": 0}]
    assert differing_keys(recipes) == ["b.c", "x"]


def test_a_run_of_the_first_release_gets_a_report(tmp_path) -> None:
    """0.1.0 summaries lack weights, tta and best_epoch: the page takes them from the re-score."""
    run = tmp_path / "old"
    shutil.copytree(Path(__file__).parents[1] / "runs" / "fixtures" / "digits-run-v0.1.0", run)
    assert main(["report", str(run), "--method", "gradcam"]) == 0
    html = (run / "report.html").read_text()
    assert "not recorded (a run of an earlier release)" in html and "test-time augmentation: none, 359 test images" in html
