"""The zoo table's checked-in counts: recounted here, so the file can never drift."""

from __future__ import annotations

import json

from cnnlab.inspect import zoo
from cnnlab.models import list_models


def test_checked_in_counts_equal_a_fresh_count(tmp_path) -> None:
    fresh = zoo.write_counts(tmp_path / "counts.json")
    stored = json.loads(zoo.COUNTS_FILE.read_text())
    assert stored == fresh, "run `python -m cnnlab.inspect.zoo` to regenerate cnnlab/inspect/zoo_counts.json"
    assert sorted(stored) == list_models()


def test_a_model_missing_from_the_table_is_counted(monkeypatch) -> None:
    monkeypatch.setattr(zoo, "_stored_counts", lambda: {})
    row = next(r for r in zoo.model_table("resnet18"))
    assert (row["params"], row["macs"]) == (11_689_512, 1_814_073_344)


def test_a_stale_input_size_is_recounted(monkeypatch) -> None:
    stale = {"resnet18": {"input_size": [3, 32, 32], "params": 1, "macs": 1}}
    monkeypatch.setattr(zoo, "_stored_counts", lambda: stale)
    assert zoo.model_counts("resnet18")["params"] == 11_689_512
