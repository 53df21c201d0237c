"""Render the report's jinja2 templates (files in report/templates, not strings in Python)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).parent / "templates"


def _percent(value: float | None, digits: int = 2) -> str:
    """Return a fraction as a percentage with `digits` decimals ("" for None)."""
    return "" if value is None else f"{100 * value:.{digits}f} %"


def _bytes(value: int) -> str:
    """Return a byte count in kB or MB."""
    return f"{value / 1e6:.2f} MB" if value >= 1e6 else f"{value / 1e3:.1f} kB"


def render_page(template: str, **context: Any) -> str:
    """Return the HTML of `template` filled with `context` (values escaped; undefined names are errors)."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(percent=_percent, bytes=_bytes, thousands=lambda n: f"{n:,}")
    return environment.get_template(template).render(**context)
