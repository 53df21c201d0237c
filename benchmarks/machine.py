"""What machine a benchmark ran on: its JSON names the CPU, since machines here differ by 3x or more."""

from __future__ import annotations

import platform


def cpu_name() -> str:
    """Return the CPU's model name as /proc/cpuinfo gives it (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
