"""The zoo as a table: name, family, paper, year, parameters and GMACs at each model's own input."""

from __future__ import annotations

from typing import Any

from cnnlab.inspect.summary import summary
from cnnlab.models import list_models, model_info


def model_table(pattern: str | None = None) -> list[dict[str, Any]]:
    """Return one row per zoo model (filtered by a shell pattern), counted on the meta device."""
    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        result = summary(name, info.input_size)
        rows.append({
            "name": name,
            "family": info.family,
            "paper": info.paper,
            "year": info.year,
            "params": result.total_params,
            "macs": result.total_macs,
            "gmacs": round(result.total_macs / 1e9, 6),  # LeNet-5 has 0.000416 G
            "input_size": list(info.input_size),
            "small_input": info.small_input,
            "classifier": info.classifier,
            "torchvision": info.torchvision,
        })
    return rows
