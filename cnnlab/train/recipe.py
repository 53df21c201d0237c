"""Training recipes: one frozen, typed dataclass that YAML files and CLI overrides both parse into.

A recipe is `recipes/<name>.yaml` (or any YAML path) plus dotted `key=value` overrides from the
command line (`optim.lr=0.05 epochs=10`); the resolved recipe is saved with every run.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field, fields, is_dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from cnnlab.errors import CnnlabError

RECIPE_DIR = Path(__file__).resolve().parents[2] / "recipes"


class OptimizerName(StrEnum):
    """Optimisers a recipe can name."""

    SGD = "sgd"
    ADAM = "adam"
    ADAMW = "adamw"
    RMSPROP = "rmsprop"


class ScheduleName(StrEnum):
    """Learning-rate schedules a recipe can name."""

    CONSTANT = "constant"
    STEP = "step"
    MULTISTEP = "multistep"
    COSINE = "cosine"
    ONECYCLE = "onecycle"
    PLATEAU = "plateau"


class TTA(StrEnum):
    """Test-time views of the final test score, whose logits are averaged."""

    NONE = "none"
    FLIP = "flip"  # the image and its mirror (not for digits or text)
    SHIFT = "shift"  # the image and two copies shifted by one pixel
    FLIP_SHIFT = "flip+shift"  # the image, its mirror, each shifted by one pixel


class Precision(StrEnum):
    """Arithmetic of the forward and backward pass."""

    FP32 = "fp32"
    BF16 = "bf16"  # autocast to bfloat16: no loss scaling needed
    FP16 = "fp16"  # autocast to float16 with a gradient scaler


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser and its regularisation."""

    name: OptimizerName = OptimizerName.SGD
    lr: float = 0.1  # peak learning rate, per step, for a batch of `Recipe.batch_size`
    momentum: float = 0.9  # SGD and RMSprop; Adam's beta1 stays 0.9
    nesterov: bool = False  # SGD only (Sutskever et al. 2013)
    weight_decay: float = 5e-4  # never applied to biases and normalisation parameters
    decoupled: bool = False  # decay weights by lr*wd directly (Loshchilov & Hutter 2019), not via the gradient
    grad_clip: float | None = None  # clip the global gradient norm to this value; None = off
    fused: bool = False  # one fused kernel per optimiser step on a GPU (SGD, Adam, AdamW); ignored on CPU


@dataclass(frozen=True)
class ScheduleConfig:
    """How the learning rate moves over training."""

    name: ScheduleName = ScheduleName.COSINE
    warmup_epochs: float = 0.0  # linear warm-up from 0, in epochs (Goyal et al. 2017)
    step_size: int = 30  # epochs between decays, for "step"
    milestones: tuple[int, ...] = ()  # epochs at which to decay, for "multistep"
    gamma: float = 0.1  # decay factor of step, multistep and plateau (AlexNet divided by 10)
    patience: int = 5  # epochs without validation improvement before "plateau" decays
    final_lr_fraction: float = 0.0  # cosine ends at lr * this fraction


@dataclass(frozen=True)
class AugmentConfig:
    """Batch augmentation on the training device (whole batches at once)."""

    flip: bool = False  # random horizontal flip, p = 0.5 (not for digits)
    crop_padding: int = 0  # random crop after zero padding by this many pixels (translation)
    cutout: int = 0  # side of a zeroed square at a random place (DeVries & Taylor 2017); 0 = off


RUNTIME_KEYS = frozenset({"workers", "stream"})  # may differ on resume


@dataclass(frozen=True)
class Recipe:
    """Everything a training run needs besides the model and the data."""

    epochs: int = 30  # passes over the training set
    batch_size: int = 128  # images per optimiser step, over all devices
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    label_smoothing: float = 0.0  # Szegedy et al. 2016
    aux_loss_weight: float = 0.3  # weight of each auxiliary head's loss (GoogLeNet's 0.3)
    val_fraction: float = 0.1  # of the training set held out for validation, seeded
    input_size: int | None = None  # resize images to this square size once, before training; None = keep
    input_pad: int = 0  # zero pixels added on each side after resizing (MNIST 28 + 2 x 2 = LeNet's 32)
    whiten_init: bool = False  # initialise the model's `whiten` conv from training patches (speednet)
    tta: TTA = TTA.NONE  # test-time augmentation of the final test score
    stream: bool | None = None  # read batches through DataLoader workers; None = only when too big to keep on the device
    workers: int = 4  # DataLoader worker processes when streaming
    precision: Precision = Precision.FP32
    channels_last: bool = False  # NHWC memory layout: faster convolutions on tensor cores
    compile: bool = False  # torch.compile the model
    ema_decay: float | None = None  # keep an exponential moving average of the weights; None = off
    early_stopping_patience: int | None = None  # epochs without val-loss improvement; None = off
    seed: int = 0  # initialisation, split, shuffling, augmentation
    deterministic: bool = False  # deterministic kernels: a resumed run repeats an unbroken one

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0.0 < self.val_fraction < 1.0, "val_fraction must lie in (0, 1)"),
            (0.0 <= self.label_smoothing < 1.0, "label_smoothing must lie in [0, 1)"),
            (self.input_size is None or self.input_size >= 1, "input_size must be >= 1 (or null to keep the size)"),
            (self.input_pad >= 0, "input_pad must be >= 0"),
            (self.workers >= 0, "workers must be >= 0"),
            (self.ema_decay is None or 0.0 < self.ema_decay < 1.0, "ema_decay must lie in (0, 1) (or null for none)"),
            (self.optim.lr > 0, "optim.lr must be > 0"),
            (self.early_stopping_patience is None or self.early_stopping_patience >= 1, "early_stopping_patience must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise CnnlabError(f"recipe: {message}")

    def to_dict(self) -> dict[str, Any]:
        """Return the recipe as plain YAML-ready data."""
        return _plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        """Return the recipe as a YAML document."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def digest(self) -> str:
        """Return a short hash of what the recipe computes: checkpoints record it so resume can compare."""
        # How data reach the model (workers, streaming) changes speed, not results.
        relevant = {k: v for k, v in self.to_dict().items() if k not in RUNTIME_KEYS}
        return hashlib.sha256(yaml.safe_dump(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


def _convert(value: Any, kind: Any, key: str) -> Any:
    """Return `value` as the field type `kind`, or raise naming the key and what it accepts."""
    origin = get_origin(kind)
    if origin is not None and type(None) in get_args(kind):  # X | None
        if value is None:
            return None
        kind = next(a for a in get_args(kind) if a is not type(None))
        origin = get_origin(kind)
    if is_dataclass(kind):
        if not isinstance(value, dict):
            raise CnnlabError(f"recipe key {key} needs a mapping of its fields, got {value!r}")
        return _build(kind, value, key + ".")
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        try:
            return kind(str(value).lower())
        except ValueError:
            raise CnnlabError(f"recipe key {key}={value!r} is not one of {', '.join(m.value for m in kind)}") from None
    if origin is tuple:
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(_convert(v, get_args(kind)[0], key) for v in items)
    if kind is bool:
        if not isinstance(value, bool):
            raise CnnlabError(f"recipe key {key} takes true or false, got {value!r}")
        return value
    if kind in (int, float):
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not float(value).is_integer()):
            raise CnnlabError(f"recipe key {key} takes a number ({kind.__name__}), got {value!r}")
        return kind(value)
    return value


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise CnnlabError(f"unknown recipe key {prefix}{unknown[0]}: known keys are {', '.join(prefix + n for n in sorted(names))}")
    return cls(**{k: _convert(v, hints[k], prefix + k) for k, v in data.items()})


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """Return the Recipe a (possibly partial) mapping describes; missing keys keep their defaults."""
    return _build(Recipe, data or {})


def _merge(base: dict[str, Any], dotted: str, value: Any) -> None:
    head, _, rest = dotted.partition(".")
    if rest:
        child = base.setdefault(head, {})
        if not isinstance(child, dict):
            raise CnnlabError(f"recipe key {head} is not a section: write {head}=VALUE")
        _merge(child, rest, value)
    else:
        base[head] = value


def load_recipe(name_or_path: str = "default", overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Return a named recipe (recipes/<name>.yaml) or a YAML file, with key=value overrides applied."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in RECIPE_DIR.glob("*.yaml")) if RECIPE_DIR.is_dir() else []
        raise CnnlabError(f"no recipe {name_or_path!r}: use one of {', '.join(known)} or a YAML path")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise CnnlabError(f"{path} is not valid YAML ({str(error).splitlines()[0]})") from None
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise CnnlabError(f"override {item!r} must look like key=value, e.g. optim.lr=0.05")
        _merge(data, key.strip(), yaml.safe_load(text) if text.strip() else None)
    return recipe_from_dict(data)

