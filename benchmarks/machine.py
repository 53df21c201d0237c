"""What machine a benchmark ran on: its JSON names the CPU, since machines here differ by 3x or more."""

from __future__ import annotations

from cnnlab.devices import cpu_name as _cpu_name


def cpu_name() -> str:
    """Return the CPU's model name as cnnlab.devices reads it ("unknown" when nothing says)."""
    return _cpu_name() or "unknown"
