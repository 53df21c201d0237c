"""Where data files are found, how they are verified, and how they are downloaded.

Search order: an explicit --data-dir, then $CNNLAB_DATA, then ~/.cache/cnnlab; only then the
official mirrors. Every file is checked against a published checksum before it is used.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from cnnlab.errors import CnnlabError

CACHE_DIR = Path("~/.cache/cnnlab")


def search_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Return the folders searched for data, in order: data_dir, $CNNLAB_DATA, ~/.cache/cnnlab."""
    dirs = []
    if data_dir is not None:
        dirs.append(Path(data_dir).expanduser())
    if os.environ.get("CNNLAB_DATA"):
        dirs.append(Path(os.environ["CNNLAB_DATA"]).expanduser())
    dirs.append(CACHE_DIR.expanduser())
    return dirs


def find_file(names: Sequence[str], dirs: Sequence[Path]) -> Path | None:
    """Return the first existing file among `names` in `dirs` (searched in order), else None."""
    for folder in dirs:
        for name in names:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def digest(path: Path, algorithm: str = "md5", *, decompress: bool = False) -> str:
    """Return the hex digest of a file's bytes (of its gunzipped bytes with decompress=True)."""
    hasher = hashlib.new(algorithm)
    opener = gzip.open if decompress else open
    try:
        with opener(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
    except (OSError, EOFError) as error:  # not gzip (BadGzipFile), cut short (EOFError), unreadable
        raise CnnlabError(f"{path} cannot be read ({error or type(error).__name__}): delete it and fetch it again") from None
    return hasher.hexdigest()


def download(urls: Sequence[str], target: Path, show_progress: bool = True) -> None:
    """Download the first URL that answers into `target` (atomically); raise if none does."""
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                total = int(response.headers.get("Content-Length") or 0)
                with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as handle:
                    _copy_with_progress(response, handle, total, url if show_progress else None)
            os.replace(handle.name, target)
            return
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            errors.append(f"{url}: {getattr(error, 'reason', error)}")
    raise CnnlabError("download failed from every mirror (" + "; ".join(errors) + ")")


def _copy_with_progress(source, destination, total: int, label: str | None) -> None:  # noqa: ANN001 - file objects
    if label is None:
        shutil.copyfileobj(source, destination)
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn()) as progress:
        task = progress.add_task(label.rsplit("/", 1)[-1], total=total or None)
        for block in iter(lambda: source.read(1 << 16), b""):
            destination.write(block)
            progress.update(task, advance=len(block))
