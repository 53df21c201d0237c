"""A detection run's report: its headline AP, PR curves, per-class AP and the drawn false positives and misses."""

import json
import re

import numpy as np

from cnnlab.report.detection import match
from cnnlab.report.run_report import DETECTION_SECTIONS, write_report
from cnnlab.train.tasks.coco_ap import Detected, Truth


def test_false_positives_and_misses_by_hand() -> None:
    truth = Truth(np.array([[0, 0, 10, 10], [20, 20, 30, 30.0]]), np.array([1, 2]), np.zeros(2, bool), np.full(2, 100.0))
    found = Detected(np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50.0]]),
                     np.array([0.9, 0.8, 0.7, 0.2]), np.array([1, 1, 1, 2]))
    false, missed, best = match(truth, found)
    # The surest takes truth 0; the second duplicates it; the third has the wrong class; the fourth scores below 0.3.
    assert false == [1, 2] and missed == [1] and best[2] == 1.0


def test_a_detection_report_has_its_sections_and_the_summary_figures(detection_run, tmp_path) -> None:
    page = write_report(detection_run, tmp_path / "page.html", methods=())
    html = page.read_text()
    for section in DETECTION_SECTIONS:
        assert f'<section id="{section}">' in html
    assert '<section id="mistakes">' not in html
    summary = json.loads((detection_run / "summary.json").read_text())
    assert f"<code>{summary['test_ap']}</code>" in html and "surest false positives" in html
    assert len(re.findall(r'<img[^>]* src="data:image/png;base64,', html)) >= 3  # curves, PR curves, pictures
