"""Transfer learning: a model starts from a source's weights with a fresh head, frozen, thawed and trained at per-stage rates.

The source is a run directory (its chosen weights and its normalisation) or a state-dict file of
the same architecture, read without unpickling. Tensors are copied by name and shape; the
classifier always starts afresh, since the new task has its own classes. The stages are a
model's top-level layers with parameters, input to output (LeNet-5: conv1, conv2, fc1, fc2; a
ResNet: conv1, bn1, layer1 ... layer4), and `layers` copies only the first n of them as
Yosinski et al. (2014) transfer n layers.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from cnnlab.data.normalise import Normalisation
from cnnlab.errors import CnnlabError
from cnnlab.models.transfer import IMAGENET_MEAN, IMAGENET_STD
from cnnlab.runs.paradigm import FinetuneConfig
from cnnlab.train.state import Callback, Context, EpochMetrics


def _with_parameters(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in module.named_children() if any(True for _ in m.parameters())]


def stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return the (dotted name, module) of the model's top-level layers with parameters, less the classifier.

    A container that holds the model's named feature stages (a ResNet's `stages`, VGG's
    `features`) gives those stages instead, so each block of the paper is one stage.
    """
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    prefix, module = "", model
    while True:
        children = _with_parameters(module)
        if len(children) != 1 or children[0][1] is head:
            break
        prefix, module = f"{prefix}{children[0][0]}.", children[0][1]  # a wrapper (tv/, timm/): look inside
    named = list(model.feature_layers()) if hasattr(model, "feature_layers") else []
    found = []
    for name, child in children:
        full = prefix + name
        if any(layer.startswith(full + ".") for layer in named):
            found += [(f"{full}.{n}", m) for n, m in _with_parameters(child)]
        elif child is not head:
            found.append((full, child))
    return found


def stage_named(model: nn.Module, name: str) -> int:
    """Return the index of the stage `name` (its full dotted name, or its last part), or raise one line listing them."""
    names = [n for n, _ in stages(model)]
    for index, full in enumerate(names):
        if name in (full, full.rpartition(".")[2]):
            return index
    raise CnnlabError(f"no stage {name!r} to freeze up to: this model's stages are {', '.join(names)}")


def _head_keys(model: nn.Module) -> set[str]:
    """Return the state-dict keys of the model's classifier."""
    head = model.get_classifier()
    path = next(n for n, m in model.named_modules() if m is head)
    return {f"{path}.{k}" for k in head.state_dict()}


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Return the tensors of a .safetensors file or a .pt/.pth state dict, read without unpickling code."""
    if not path.is_file():
        raise CnnlabError(f"{path} is neither a run directory nor a weights file: give a run or a .safetensors/.pth file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as error:  # a torch pickle renamed, a truncated file: never unpickled
            detail = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
            raise CnnlabError(f"{path} is not a safetensors file ({detail}): convert it with "
                              "safetensors.torch.save_file, or give a .pth state dict") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same one line
        raise CnnlabError(f"{path} is not a weights file torch can read safely ({str(error).splitlines()[0][:120]}): "
                          "give a state dict saved with torch.save or safetensors") from None
    for key in ("state_dict", "model", "model_state_dict"):  # the usual training-script wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CnnlabError(f"{path} holds no state dict of tensors: give the model's state_dict()")
    return state


def source_weights(config: FinetuneConfig, model_name: str) -> tuple[dict[str, torch.Tensor], Normalisation | None]:
    """Return the source's tensors and the normalisation it learnt with (None when it has none of its own)."""
    from cnnlab.runs.info import RunInfo
    from cnnlab.runs.load import load_run

    path = Path(str(config.source)).expanduser()
    if config.mean is not None:
        given: Normalisation | None = Normalisation(tuple(config.mean), tuple(config.std or ()))
    else:
        given = None
    if path.is_dir():
        info = RunInfo.read(path)
        if info.model != model_name:
            raise CnnlabError(f"{path} trained {info.model}, not {model_name}: fine-tune the source's own model "
                              "(leave --model out)")
        source = load_run(path)
        return source.model.state_dict(), given or source.normalisation
    if given is None and model_name.startswith(("tv/", "timm/")):
        given = Normalisation(IMAGENET_MEAN, IMAGENET_STD)  # what their published weights were trained with
    return read_weights(path), given


def transfer(model: nn.Module, model_name: str, config: FinetuneConfig) -> tuple[int, Normalisation | None]:
    """Copy the source's tensors into `model` (all stages, or the first `layers`), head excluded; return (copied, normalisation)."""
    theirs, norm = source_weights(config, model_name)
    ours = model.state_dict()
    if not any(k in ours for k in theirs) and any(f"model.{k}" in ours for k in theirs):
        theirs = {f"model.{k}": v for k, v in theirs.items()}  # a bare torchvision/timm file for a wrapped model
    kept = stages(model) if config.layers is None else stages(model)[: config.layers]
    if config.layers is not None and config.layers > len(stages(model)):
        raise CnnlabError(f"paradigm.finetune.layers={config.layers} but the model has {len(stages(model))} stages")
    wanted = [f"{name}.{key}" for name, module in kept for key in module.state_dict()]
    wanted = [k for k in wanted if k not in _head_keys(model)]
    missing = [k for k in wanted if k not in theirs]
    if missing:
        raise CnnlabError(f"the source holds {len(wanted) - len(missing)} of the {len(wanted)} tensors to transfer "
                          f"(no {missing[0]}): is it the same architecture?")
    for key in wanted:
        if theirs[key].shape != ours[key].shape:
            raise CnnlabError(f"the source's {key} has shape {tuple(theirs[key].shape)}, the model's "
                              f"{tuple(ours[key].shape)}: the source is another variant (channels, width)")
    model.load_state_dict({**ours, **{k: theirs[k].to(ours[k].dtype) for k in wanted}})
    if config.source_normalisation and norm is None:
        raise CnnlabError(f"{config.source} carries no input statistics: give paradigm.finetune.mean and std "
                          "(the source's), or paradigm.finetune.source_normalisation=false")
    return len(wanted), norm if config.source_normalisation else None


def lr_scales(model: nn.Module, config: FinetuneConfig) -> dict[int, float] | None:
    """Return {id(parameter): learning-rate factor} of discriminative rates (lr_decay per stage from the head), or None."""
    if config.source is None or config.lr_decay == 1.0:
        return None
    found, head = stages(model), {id(p) for p in model.get_classifier().parameters()}
    scales = {}
    for index, (_, module) in enumerate(found):
        for param in module.parameters():
            if id(param) not in head:  # the head trains at lr, even inside a stage (VGG's classifier)
                scales[id(param)] = config.lr_decay ** (len(found) - index)
    return scales


class Freezing(Callback):
    """Freeze the stages up to freeze_until; thaw one more, deepest first, every unfreeze_every epochs (also on resume)."""

    order = -5  # before anything that reads which weights train

    def __init__(self, config: FinetuneConfig) -> None:
        self.config = config

    def frozen_stages(self, model: nn.Module, epoch: int) -> int:
        """Return how many stages, from the input, are frozen during the epoch after `epoch` finished ones."""
        count = stage_named(model, str(self.config.freeze_until)) + 1
        thawed = epoch // self.config.unfreeze_every if self.config.unfreeze_every else 0
        return max(0, count - thawed)

    def apply(self, model: nn.Module, epoch: int) -> None:
        """Set requires_grad of every stage's parameters for the coming epoch."""
        frozen, head = self.frozen_stages(model, epoch), {id(p) for p in model.get_classifier().parameters()}
        for index, (_, module) in enumerate(stages(model)):
            for param in module.parameters():
                param.requires_grad_(index >= frozen or id(param) in head)

    def on_fit_start(self, ctx: Context) -> None:
        """Freeze for the first epoch to train (the resumed one, after a resume)."""
        self.apply(ctx.model, ctx.state.epoch)

    def on_epoch_end(self, ctx: Context, metrics: EpochMetrics, is_best: bool) -> None:
        """Thaw on schedule for the next epoch."""
        self.apply(ctx.model, ctx.state.epoch)

    def on_fit_end(self, ctx: Context) -> None:
        """Leave every parameter trainable again: the run's model is not left half frozen."""
        for param in ctx.model.parameters():
            param.requires_grad_(True)
