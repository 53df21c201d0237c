"""One hash of every file of a run directory, for the tests that check a tool left a run unchanged."""

import hashlib
from pathlib import Path


def run_digest(run: Path) -> str:
    """Return the SHA-256 of the names and bytes of every file under `run`, in sorted order."""
    files = sorted(p for p in run.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest()
