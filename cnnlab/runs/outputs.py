"""Output: the one way a command writes files into a folder, never over a run's own files.

Every command that does not write a run takes `--out FOLDER` and writes fixed file names inside
it. Each file is written to a temporary sibling (its suffix kept, so plotting libraries pick
the format) and renamed into place: a kill or an error leaves the old file or the new one, and
the temporary file is removed on every failure. Errors name the user's path, not the temporary
one. A folder this helper made and left empty when a command fails is removed again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError

# What `cnnlab train` (and its paradigms, eval and report) write into a run directory: never replaced by another
# command; eval and report write their own (OWN_FILES) into the run they score.
RUN_FILES = frozenset({"summary.json", "metrics.csv", "data.json", "recipe.yaml", "teachers.json", "checkpoints",
                       "diagnostics.jsonl", "eval.json", "confusion.png", "pr_curves.png", "report.html"})
# Suffixes that say a path names a file; `--out` names a folder.
FILE_SUFFIXES = frozenset({".json", ".png", ".jpg", ".jpeg", ".html", ".htm", ".csv", ".yaml", ".yml", ".txt",
                           ".safetensors", ".pt", ".pth", ".md", ".svg", ".pdf"})


def _umask() -> int:
    """Return the process's umask (read by setting it and setting it back, the only way the system offers)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def is_run_dir(path: Path) -> bool:
    """Return whether `path` is a run directory written by cnnlab train."""
    return (path / "data.json").is_file() and (path / "recipe.yaml").is_file()


def protected(path: Path) -> Path | None:
    """Return the run directory whose own file `path` is (or lies inside), else None; links are followed."""
    path = Path(os.path.realpath(path))
    for run in path.parents:
        if is_run_dir(run):
            relative = path.relative_to(run).parts
            if relative and (relative[0] in RUN_FILES or relative[0].startswith("events.out.tfevents")):
                return run
            return None
    return None


def refuse_run_file(path: Path, shown: str, own: frozenset[str] = frozenset(), own_run: Path | None = None) -> None:
    """Raise a one-line error when writing `path` would replace a run's own file.

    `own` names the files a command writes into `own_run`, the one run it works on (eval.json of `cnnlab eval RUN`).
    """
    run = protected(path)
    real = Path(os.path.realpath(path))
    if run is None or (own_run is not None and path.name in own and real.parent == run == Path(os.path.realpath(own_run))):
        return
    first = real.relative_to(run).parts[0]
    what = f"write inside {first}/" if (run / first).is_dir() else f"replace {first}"
    raise CnnlabError(f"--out {shown} would {what} of the run {run}, one of the run's own files: choose another --out")


def refuse_run_dir(folder: Path) -> None:
    """Raise one line when a folder meant for runs is, or lies inside, a run directory (links followed)."""
    path = Path(os.path.realpath(folder))
    for candidate in (path, *path.parents):
        if is_run_dir(candidate):
            raise CnnlabError(f"--out {folder} is inside the run {candidate}: a run goes in a folder of its own, "
                              "choose another --out")


class Output:
    """A folder a command writes fixed file names into; `shown` is how the user wrote it."""

    def __init__(self, folder: str | Path, shown: str | None = None, own: frozenset[str] = frozenset(),
                 own_run: str | Path | None = None) -> None:
        # `a/../b` must make no folder a, and `link/..` goes where the system would take it: resolve only then.
        self.folder = Path(os.path.realpath(folder)) if ".." in Path(folder).parts else Path(folder)
        self.shown = shown if shown is not None else str(folder)
        self.own, self.own_run = own, own_run  # a run's files this command writes into that one run (eval.json)
        if self.folder.exists() and not self.folder.is_dir():
            raise CnnlabError(f"--out {self.shown} is an existing file: --out names the folder to write into")
        if self.folder.suffix.lower() in FILE_SUFFIXES and not self.folder.is_dir():
            raise CnnlabError(f"--out {self.shown} names a file: --out takes the folder to write into "
                              f"(e.g. --out {self.folder.with_suffix('')})")
        refuse_run_file(self.folder, self.shown, own, own_run)

    def path(self, name: str) -> Path:
        """Return where `name` goes, refusing a name that is one of a run's own files."""
        target = self.folder / name
        refuse_run_file(target, str(Path(self.shown) / name), self.own, self.own_run)
        return target

    def check(self, names: list[str]) -> None:
        """Refuse, before anything is written, any of the names the command will write that it may not."""
        for name in names:
            self.path(name)

    def write(self, name: str, writer: Callable[[Path], Any]) -> Path:
        """Call writer(temporary path) and rename the result to folder/name; return that path."""
        target = self.path(name)
        with cleaned(target.parent):
            return self._write(target, name, writer)

    def _write(self, target: Path, name: str, writer: Callable[[Path], Any]) -> Path:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=target.suffix, dir=target.parent)
            os.close(handle)
        except OSError as error:
            raise CnnlabError(f"cannot write into --out {self.shown} ({error.strerror or error}): choose a writable folder") from None
        try:
            writer(Path(temporary))
            os.chmod(temporary, 0o666 & ~_UMASK)  # temporary files are private; outputs as the user's umask says
            os.replace(temporary, target)
        except OSError as error:
            Path(temporary).unlink(missing_ok=True)
            raise CnnlabError(f"cannot write {Path(self.shown) / name} ({error.strerror or error}): "
                              "choose a writable place with room (--out)") from None
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def bytes(self, name: str, data: bytes) -> Path:
        """Write `data` to folder/name atomically; return the path."""
        return self.write(name, lambda path: path.write_bytes(data))

    def text(self, name: str, text: str) -> Path:
        """Write `text` to folder/name atomically; return the path."""
        return self.write(name, lambda path: path.write_text(text))

    def json(self, name: str, data: Any) -> Path:
        """Write `data` as indented JSON to folder/name atomically; return the path."""
        return self.text(name, json.dumps(data, indent=2) + "\n")


def legacy_file(out: str | None, suffix: str) -> tuple[str | None, str | None]:
    """Return (folder, file name) for an `--out` that names a file of the command's `suffix` (the old spelling)."""
    if out is None or Path(out).suffix.lower() != suffix or Path(out).is_dir():
        return out, None
    return str(Path(out).parent), Path(out).name


@contextmanager
def cleaned(folder: str | Path | None) -> Iterator[None]:
    """Remove `folder` (and the parents made with it) again if the block fails and leaves it empty."""
    if folder is None:
        yield
        return
    path = Path(os.path.abspath(folder))
    made = []  # the folders that do not exist yet, deepest last
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        made.insert(0, candidate)
    try:
        yield
    except BaseException:
        if made:
            # Folders the block made inside it and left without a file go too; any file keeps its folders.
            for root, _, _ in sorted(os.walk(made[0]), key=lambda entry: -len(entry[0])):
                try:
                    Path(root).rmdir()
                except OSError:
                    pass
        for candidate in reversed(made):
            try:
                candidate.rmdir()
            except OSError:
                break
        raise

