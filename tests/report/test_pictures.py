"""Pictures that must show what they hold: the comparison table at 1200 px, the augment grid's column labels, grid titles."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from cnnlab.explain.pictures.filters import grid_figure, save_grid, tile
from cnnlab.report.compare import write_comparison
from cnnlab.report.plots import augment_figure, augment_grid
from tests.report.support_browser import chromium

LONG_POLICY = [{"op": "flip", "p": 0.5}, {"op": "translate", "padding": 1}, {"op": "cutout", "size": 2},
               {"op": "randaugment", "n": 2, "magnitude": 9}, {"op": "rotate", "degrees": 30}]


def _with_recipe(run: Path, tmp_path: Path, name: str, **changes: object) -> Path:
    """Return a copy of `run` whose recipe.yaml has `changes` (dotted keys), as if trained with those overrides."""
    copy = tmp_path / name
    shutil.copytree(run, copy)
    recipe = yaml.safe_load((copy / "recipe.yaml").read_text())
    for key, value in changes.items():
        *path, last = key.split(".")
        section = recipe
        for part in path:
            section = section.setdefault(part, {})
        section[last] = value
    (copy / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return copy


def _geometry(page: Path, width: int) -> dict:
    """Open `page` in headless Chromium `width` px wide; return the page's width and the figure cells' right edges."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra: make setup")
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            view = browser.new_page(viewport={"width": width, "height": 900})
            view.goto(page.resolve().as_uri(), wait_until="load")
            return view.evaluate("""() => ({
                page: document.documentElement.scrollWidth,
                section: document.querySelector("section#table").getBoundingClientRect().right,
                figures: [...document.querySelectorAll("section#table .num")].map(cell => cell.getBoundingClientRect().right),
                text: document.querySelector("section#table").innerText,
            })""")
        finally:
            browser.close()


def test_comparison_table_fits_1200_px_with_every_final_figure_in_sight(digit_runs, tmp_path) -> None:
    runs = [digit_runs[0],
            _with_recipe(digit_runs[1], tmp_path, "long-policy", augment=LONG_POLICY, **{"optim.weight_decay": 0.001,
                         "schedule.name": "cosine", "loss.label_smoothing": 0.1}),
            _with_recipe(digit_runs[2], tmp_path, "other-policy", augment=LONG_POLICY[1::2], **{"schedule.name": "cosine"})]
    page = write_comparison(runs, tmp_path / "compare.html")
    seen = _geometry(page, 1200)
    assert seen["page"] <= 1200  # nothing runs off the right edge of the window
    assert len(seen["figures"]) >= 8 and max(seen["figures"]) <= seen["section"]
    assert "randaugment" in seen["text"] and "loss.label_smoothing" in seen["text"]  # breaks are <wbr>, not characters


def test_comparison_puts_the_figures_before_the_differing_keys(digit_runs, tmp_path) -> None:
    html = write_comparison(digit_runs, tmp_path / "c.html").read_text()
    header = html[html.index("<th>run</th>"):html.index("</tr>", html.index("<th>run</th>"))]
    assert header.index("test_<wbr>top1") < header.index("images/s") < header.index("optim.<wbr>lr")


def _overlaps(boxes: list) -> list[tuple[int, int]]:
    return [(i, i + 1) for i, (a, b) in enumerate(zip(boxes, boxes[1:], strict=False)) if a.x1 > b.x0]


@pytest.mark.parametrize(("side", "upright"), [(8, True), (32, False)])
def test_augment_grid_column_labels_do_not_overlap(side: int, upright: bool) -> None:
    """Digits' 8x8 tiles are too narrow for "original" side by side; CIFAR's 32x32 are not and keep level labels."""
    pictures = torch.rand(3, 8, 3, side, side, generator=torch.Generator().manual_seed(0))  # 7 draws
    figure = augment_figure(pictures, ["bird", "horse", "truck"], "cifar10: " + " -> ".join(["randaugment"] * 12) + " (7 draws)")
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    labels = figure.axes[0].get_xticklabels()
    assert [label.get_text() for label in labels] == ["original", *(f"draw {d}" for d in range(1, 8))]
    assert _overlaps([label.get_window_extent(renderer) for label in labels]) == []
    assert all(label.get_rotation() == (90 if upright else 0) for label in labels)
    title = figure.axes[0].title.get_window_extent(renderer)
    assert figure.bbox.x0 <= title.x0 and title.x1 <= figure.bbox.x1  # wrapped to the figure, not one long line
    assert augment_grid(pictures, ["bird", "horse", "truck"], "t").startswith(b"\x89PNG")


TITLE = "small_cnn features.0.block.1.conv: per channel, top 9 receptive-field crops, then their deconvnet projections"


@pytest.mark.parametrize(("columns", "title"), [(2, TITLE), (18, TITLE), (2, "x" * 160)])
def test_grid_title_lies_within_the_figure(columns: int, title: str, tmp_path) -> None:
    grid = tile(torch.rand(8, 1, 5, 5), columns=columns)
    figure = grid_figure(grid, title, scale=3.0)
    figure.canvas.draw()
    box = figure.axes[0].title.get_window_extent(figure.canvas.get_renderer())
    inside = figure.bbox
    assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1, (box, inside)
    assert save_grid(grid, tmp_path / "g.png", title, scale=3.0).read_bytes().startswith(b"\x89PNG")
