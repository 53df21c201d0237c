"""Checkpoints as directories: model.safetensors, state.safetensors (tensors), state.json (the rest).

Optimiser, scheduler and RNG states are nested dicts of tensors and plain values; they are
split into named tensors (safetensors) and a JSON skeleton that points at them, so loading
never unpickles anything. A checkpoint is written to a temporary sibling and renamed whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from cnnlab.errors import CnnlabError

_TENSOR = "__tensor__"


def flatten_state(value: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """Return a JSON-able copy of `value` with every tensor moved into `tensors` under a key."""
    if isinstance(value, torch.Tensor):
        key = f"{prefix}.{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous()
        return {_TENSOR: key}
    if isinstance(value, dict):
        # JSON keys are strings; optimiser state is keyed by int parameter ids, so keep the type.
        return {"__dict__": [[flatten_state(k, tensors, prefix), flatten_state(v, tensors, prefix)] for k, v in value.items()]}
    if isinstance(value, list | tuple):
        return {"__list__": [flatten_state(v, tensors, prefix) for v in value], "tuple": isinstance(value, tuple)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise CnnlabError(f"cannot store a {type(value).__name__} in a checkpoint (only tensors and plain values)")


def unflatten_state(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Return the nested structure flatten_state stored, with its tensors put back."""
    if isinstance(value, dict):
        if _TENSOR in value:
            return tensors[value[_TENSOR]]
        if "__dict__" in value:
            return {unflatten_state(k, tensors): unflatten_state(v, tensors) for k, v in value["__dict__"]}
        items = [unflatten_state(v, tensors) for v in value["__list__"]]
        return tuple(items) if value["tuple"] else items
    return value


def _retired(directory: Path) -> Path:
    return directory.with_name(f".{directory.name}-retired")


def recover(directory: Path) -> None:
    """Put the previous checkpoint back if a process died between the two renames of a swap."""
    retired = _retired(directory)
    if not directory.exists() and retired.is_dir():
        try:
            os.replace(retired, directory)
        except FileNotFoundError:
            pass  # another process (a data-parallel rank) put it back first


def save_checkpoint(directory: Path, model: nn.Module, state: dict[str, Any], info: dict[str, Any]) -> None:
    """Write a checkpoint directory whole: model weights, training state tensors, and info JSON.

    The new directory is written beside the old one and swapped in by two renames; killed at
    any moment, the process leaves either the old or the new checkpoint complete (between the
    renames the old one waits as .NAME-retired, which the next load or save puts back).
    """
    directory.parent.mkdir(parents=True, exist_ok=True)
    recover(directory)
    for stale in directory.parent.glob(f".{directory.name}-*"):  # half-written by a killed process
        if stale != _retired(directory):
            shutil.rmtree(stale, ignore_errors=True)
    staging = directory.parent / f".{directory.name}-unmade"
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(weights, str(staging / "model.safetensors"))
        tensors: dict[str, torch.Tensor] = {}
        skeleton = flatten_state(state, tensors, "state")
        save_file(tensors, str(staging / "state.safetensors"))
        (staging / "state.json").write_text(json.dumps({**info, "state": skeleton}, indent=1))
        for path in staging.iterdir():
            path.chmod(0o644)
        staging.chmod(0o755)
    except (OSError, SafetensorError) as error:  # a full disk (ENOSPC), a read-only one: the previous checkpoint stays
        shutil.rmtree(staging, ignore_errors=True)
        detail = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise CnnlabError(f"cannot write checkpoint {directory} ({detail}): free space or fix "
                          "the folder, then resume; the previous checkpoint is kept") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if directory.exists():
        retired = _retired(directory)
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(directory, retired)
        os.replace(staging, directory)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, directory)


def _guarded(path: Path, problem: str, read: Any) -> Any:
    """Return read(), or raise one line naming the file and what is wrong with it (never a traceback)."""
    try:
        return read()
    except (SafetensorError, RuntimeError, OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        detail = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise CnnlabError(f"{path} cannot be loaded: it {problem} ({detail}); the checkpoint is damaged or "
                          "from another model") from None


def load_checkpoint(directory: Path, model: nn.Module | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (training state, info) of a checkpoint, loading its weights into `model` if given."""
    recover(directory)
    paths = [directory / n for n in ("model.safetensors", "state.safetensors", "state.json")]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise CnnlabError(f"{directory} is not a complete checkpoint (missing {', '.join(missing)})")
    weights, tensors, state_file = paths
    if model is not None:
        loaded = _guarded(weights, "is not a safetensors file", lambda: load_file(str(weights)))
        _guarded(weights, "holds weights of another model", lambda: model.load_state_dict(loaded))
    info = _guarded(state_file, "is not this checkpoint's JSON", lambda: json.loads(state_file.read_text()))
    arrays = _guarded(tensors, "is not a safetensors file", lambda: load_file(str(tensors)))
    if not isinstance(info, dict) or "state" not in info:
        raise CnnlabError(f"{state_file} cannot be loaded: it holds no training state; the checkpoint is damaged")
    state = _guarded(state_file, "does not describe state.safetensors", lambda: unflatten_state(info.pop("state"), arrays))
    return state, info
