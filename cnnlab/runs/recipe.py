"""Training recipes: one frozen, typed dataclass in sections, which YAML files and CLI overrides both parse into.

A recipe is `recipes/<name>.yaml` (or any YAML path) plus dotted `key=value` overrides from the
command line (`optim.lr=0.05 epochs=10`); the resolved recipe is saved with every run. The
sections: data, model, optim and schedule, loss, augment (a list of ops), runtime, evaluation.
The flat keys of the first release (`label_smoothing`, `precision`, `augment.crop_padding`, ...)
are read as their sectioned places (cnnlab.runs.keys), in files and in overrides alike.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from cnnlab.data.augment import AugmentOp, Flip
from cnnlab.data.tta import TTA, Views
from cnnlab.errors import CnnlabError
from cnnlab.runs.config import build, to_plain
from cnnlab.runs.keys import LEGACY_KEYS, LEGACY_ORDER, canonical, set_key
from cnnlab.runs.paradigm import DistillConfig, ParadigmConfig

RECIPE_DIR = Path(__file__).resolve().parents[2] / "recipes"


def _check(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise CnnlabError(f"recipe: {message}")


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
    CYCLIC = "cyclic"  # cosine restarted `cycles` times (Huang et al. 2017, eq. 2): snapshot ensembles


class Precision(StrEnum):
    """Arithmetic of the forward and backward pass."""

    FP32 = "fp32"
    BF16 = "bf16"  # autocast to bfloat16: no loss scaling needed
    FP16 = "fp16"  # autocast to float16 with a gradient scaler


class Weights(StrEnum):
    """Which checkpoint the final test score and `cnnlab eval` use."""

    AUTO = "auto"  # best when there is a validation split, else last
    BEST = "best"  # the best validation score by the task's measure (top-1; mIoU), ties to the lower loss
    LAST = "last"  # the end of training
    SWA = "swa"  # the stochastic weight average (paradigm.swa); auto takes it when the run kept one


@dataclass(frozen=True)
class DataConfig:
    """How the data set is split and shaped before training."""

    val_fraction: float = 0.1  # of the training set held out for validation, seeded; 0 = no validation
    input_size: int | None = None  # resize images to this square size once, before training; None = keep
    input_pad: int = 0  # zero pixels added on each side after resizing (MNIST 28 + 2 x 2 = LeNet's 32)
    # Train on a seeded permutation of the training labels (Zhang et al. 2017): the model that
    # Adebayo et al.'s (2018) data-randomisation test explains. The test split keeps its labels.
    random_labels: bool = False
    # Train on a seeded draw of this many of the images left after the validation split (None: all),
    # so a short CPU study runs on a stated subset; validation and test sets are untouched.
    train_images: int | None = None
    # Keep the labels of only a seeded, class-balanced draw of this fraction of the training split
    # (at least one image a class) and train on those; the rest is the unlabelled part that Noisy
    # Student pseudo-labels. None: every training image is labelled.
    labelled_fraction: float | None = None

    def __post_init__(self) -> None:
        _check([
            (0.0 <= self.val_fraction < 1.0, "data.val_fraction must lie in [0, 1)"),
            (self.labelled_fraction is None or 0.0 < self.labelled_fraction <= 1.0,
             "data.labelled_fraction must lie in (0, 1] (or null for all)"),
            (self.train_images is None or self.train_images >= 1, "data.train_images must be >= 1 (or null for all)"),
            (self.input_size is None or self.input_size >= 1, "data.input_size must be >= 1 (or null to keep the size)"),
            (self.input_pad >= 0, "data.input_pad must be >= 0"),
        ])


@dataclass(frozen=True)
class ModelConfig:
    """Data-dependent initialisation of the model."""

    whiten_init: bool = False  # initialise the model's `whiten` conv from training patches (speednet)
    whiten_images: int = 5000  # images whose patches set the whitening: ~20 M 2x2 patches, plenty for a 12x12 covariance
    # A detector's backbone starts from this classifier: a run directory or a .safetensors file of its
    # weights (the backbone's architecture, e.g. mobilenet_v3_large for tv/fasterrcnn_mobilenet_v3_large_fpn).
    backbone: str | None = None

    def __post_init__(self) -> None:
        _check([(self.whiten_images >= 1, "model.whiten_images must be >= 1")])


@dataclass(frozen=True)
class OptimConfig:
    """The optimiser, its regularisation and weight averaging."""

    name: OptimizerName = OptimizerName.SGD
    lr: float = 0.1  # peak learning rate, per step, for a batch of `Recipe.batch_size`
    momentum: float = 0.9  # SGD and RMSprop; Adam's beta1 stays 0.9
    nesterov: bool = False  # SGD only (Sutskever et al. 2013)
    weight_decay: float = 5e-4  # never applied to biases and normalisation parameters
    decoupled: bool = False  # decay weights by lr*wd directly (Loshchilov & Hutter 2019), not via the gradient
    grad_clip: float | None = None  # clip the global gradient norm to this value; None = off
    fused: bool = False  # one fused kernel per optimiser step on a GPU (SGD, Adam, AdamW); ignored on CPU
    ema_decay: float | None = None  # keep an exponential moving average of the weights (Polyak); None = off

    def __post_init__(self) -> None:
        _check([
            (self.lr > 0, "optim.lr must be > 0"),
            (self.weight_decay >= 0, "optim.weight_decay must be >= 0 (0 is none)"),
            (0.0 <= self.momentum < 1.0, "optim.momentum must lie in [0, 1)"),
            (self.grad_clip is None or self.grad_clip > 0, "optim.grad_clip must be > 0 (or null for none)"),
            (self.ema_decay is None or 0.0 < self.ema_decay < 1.0, "optim.ema_decay must lie in (0, 1) (or null for none)"),
        ])


@dataclass(frozen=True)
class ScheduleConfig:
    """How the learning rate moves over training, and when training stops early."""

    name: ScheduleName = ScheduleName.COSINE
    warmup_epochs: float = 0.0  # linear warm-up from 0, in epochs (Goyal et al. 2017)
    step_size: int = 30  # epochs between decays, for "step"
    milestones: tuple[int, ...] = ()  # epochs at which to decay, for "multistep"
    gamma: float = 0.1  # decay factor of step, multistep and plateau (AlexNet divided by 10)
    patience: int = 5  # epochs without validation improvement before "plateau" decays
    final_lr_fraction: float = 0.0  # cosine ends at lr * this fraction
    # One-cycle (Smith & Topin 2017, linear form): from lr * onecycle_start up to lr over the first
    # onecycle_peak_at of the steps, then down to zero. 0.3 and 1/25 are their paper's settings.
    onecycle_peak_at: float = 0.3
    onecycle_start: float = 0.04
    early_stopping_patience: int | None = None  # epochs without a better validation score (the task's); None = off
    cycles: int = 1  # for "cyclic": equal cosine cycles over the run, each from lr down to lr * final_lr_fraction

    def __post_init__(self) -> None:
        _check([
            (self.cycles >= 1, "schedule.cycles must be >= 1"),
            (self.warmup_epochs >= 0, "schedule.warmup_epochs must be >= 0"),
            (0.0 < self.onecycle_peak_at < 1.0, "schedule.onecycle_peak_at must lie in (0, 1)"),
            (0.0 <= self.onecycle_start <= 1.0, "schedule.onecycle_start must lie in [0, 1]"),
            (self.early_stopping_patience is None or self.early_stopping_patience >= 1,
             "schedule.early_stopping_patience must be >= 1"),
        ])


@dataclass(frozen=True)
class LossConfig:
    """The training loss."""

    label_smoothing: float = 0.0  # Szegedy et al. 2016
    aux_loss_weight: float = 0.3  # weight of each auxiliary head's loss (GoogLeNet's 0.3)

    def __post_init__(self) -> None:
        _check([(0.0 <= self.label_smoothing < 1.0, "loss.label_smoothing must lie in [0, 1)")])


class Adversary(StrEnum):
    """The attack adversarial training trains on."""

    NONE = "none"
    FGSM = "fgsm"  # Goodfellow et al. 2015: one signed step
    PGD = "pgd"  # Madry et al. 2018: projected steps from a random start


class AttackNorm(StrEnum):
    """The ball an attack stays inside."""

    LINF = "linf"
    L2 = "l2"


@dataclass(frozen=True)
class AdversarialConfig:
    """Adversarial training: every training batch is replaced by attacks on it before the step."""

    method: Adversary = Adversary.NONE
    eps: float = 0.3  # radius in pixels of 0..1 (MNIST's usual 0.3; CIFAR's 8/255 = 0.031)
    steps: int = 7  # PGD steps (Madry et al. trained MNIST with 40, CIFAR with 7)
    step_size: float | None = None  # None: 2.5 eps / steps
    norm: AttackNorm = AttackNorm.LINF
    random_start: bool = True
    # Epochs over which eps grows linearly to its value (epoch k of n trains at eps * k / n): a small
    # net started at MNIST's full 0.3 stays at chance (LeNet-5: 11 % after an epoch, measured).
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        _check([
            (self.warmup_epochs >= 0, "adversarial.warmup_epochs must be >= 0"),
            (self.eps >= 0, "adversarial.eps must be >= 0"),
            (self.steps >= 1, "adversarial.steps must be >= 1"),
            (self.step_size is None or self.step_size > 0, "adversarial.step_size must be > 0 (or null)"),
        ])


@dataclass(frozen=True)
class RuntimeConfig:
    """How the run executes: arithmetic, layout, compilation, determinism, data workers."""

    precision: Precision = Precision.FP32
    channels_last: bool = False  # NHWC memory layout: faster convolutions on tensor cores
    compile: bool = False  # torch.compile the model
    deterministic: bool = False  # deterministic kernels: a resumed run repeats an unbroken one
    stream: bool | None = None  # read batches through DataLoader workers; None = only when too big for the device
    workers: int = 4  # DataLoader worker processes when streaming

    def __post_init__(self) -> None:
        _check([(self.workers >= 0, "runtime.workers must be >= 0")])


@dataclass(frozen=True)
class EvaluationConfig:
    """How the final test score (and `cnnlab eval`) is computed."""

    tta: TTA = TTA.NONE  # test-time augmentation: logits averaged over these views
    batch_size: int = 512  # images per forward pass when scoring: memory only, results do not depend on it
    weights: Weights = Weights.AUTO
    # Cut every view (validation too) to this square: a model trained on random_crop of this size
    # is tested on the centre crop, or on ten crops with tta=10crop. None: the whole image.
    crop: int | None = None
    scales: tuple[int, ...] = ()  # image sizes tta=multiscale averages over (a fully convolutional model)

    def __post_init__(self) -> None:
        _check([
            (self.batch_size >= 1, "evaluation.batch_size must be >= 1"),
            (self.crop is None or self.crop >= 1, "evaluation.crop must be >= 1 (or null for the whole image)"),
            (all(s >= 1 for s in self.scales), "evaluation.scales must be positive sizes"),
        ])
        self.views()  # a mode without the sizes it needs is refused when the recipe is read

    def views(self) -> Views:
        """Return the test-time views these settings describe."""
        return Views(self.tta, self.crop, self.scales)


LATER_P = ("translate", "cutout")  # ops that gained `p` (default 1) after runs were written
RUNTIME_KEYS = (("runtime", "stream"), ("runtime", "workers"))  # may differ on resume: speed, not results
OUTPUT_KEYS = ("diagnostics", "report")  # what a run writes besides its weights: may differ on resume
#: Keys added after runs were written: left out of the digest while they hold their default, so a
#: run of an earlier release still resumes (a recipe that sets one gets a digest of its own).
LATER_KEYS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("data", "random_labels"), False),
    (("data", "train_images"), None),
    (("data", "labelled_fraction"), None),
    (("adversarial",), None),  # None: the whole section at its defaults
    (("paradigm",), None),
    (("schedule", "cycles"), 1),
    (("evaluation", "crop"), None),
    (("evaluation", "scales"), None),
    (("model", "backbone"), None),
)


@dataclass(frozen=True)
class Recipe:
    """Everything a training run needs besides the model and the data."""

    epochs: int = 30  # passes over the training set
    batch_size: int = 128  # images per optimiser step, over all devices
    seed: int = 0  # initialisation, split, shuffling, augmentation
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: tuple[AugmentOp, ...] = ()  # applied in order to every training batch
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    paradigm: ParadigmConfig = field(default_factory=ParadigmConfig)  # distillation, ...: off by default
    diagnostics: bool = False  # record per-layer gradient norms and activation statistics (diagnostics.jsonl)
    report: bool = False  # `cnnlab train` writes report.html into the run directory when training ends

    def __post_init__(self) -> None:
        _check([
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0 <= self.seed < 1 << 63, "seed must lie in [0, 2**63)"),
            (self.schedule.name is not ScheduleName.CYCLIC or self.epochs % self.schedule.cycles == 0,
             f"epochs ({self.epochs}) must be a multiple of schedule.cycles ({self.schedule.cycles})"),
            (not self.paradigm.snapshot.enabled or self.schedule.name is ScheduleName.CYCLIC,
             "paradigm.snapshot saves one model per learning-rate cycle: set schedule.name=cyclic and schedule.cycles=M"),
            (self.paradigm.swa.start_epoch is None or self.paradigm.swa.start_epoch <= self.epochs,
             f"paradigm.swa.start_epoch ({self.paradigm.swa.start_epoch}) must be at most epochs ({self.epochs})"),
            # Snapshots are taken at the ends of equal cycles of epochs; a warm-up would shift them off the low points.
            (self.schedule.name is not ScheduleName.CYCLIC or self.schedule.warmup_epochs == 0,
             "schedule.name=cyclic has no warm-up (each cycle starts at the peak): set schedule.warmup_epochs=0"),
            (not self.paradigm.snapshot.enabled or self.schedule.cycles >= 2,
             "paradigm.snapshot needs at least two cycles to make an ensemble: set schedule.cycles=M (M >= 2)"),
            (self.evaluation.weights is not Weights.SWA or self.paradigm.swa.start_epoch is not None,
             "evaluation.weights=swa needs the average: set paradigm.swa.start_epoch=N"),
        ])

    def to_dict(self) -> dict[str, Any]:
        """Return the recipe as plain YAML-ready data."""
        return to_plain(self)

    def to_yaml(self) -> str:
        """Return the recipe as a YAML document."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def digest(self) -> str:
        """Return a short hash of what the recipe computes: checkpoints record it so resume can compare."""
        relevant = self.to_dict()
        for section, key in RUNTIME_KEYS:
            relevant[section].pop(key)
        for key in OUTPUT_KEYS:
            relevant.pop(key)
        for op in relevant["augment"]:
            if op["op"] in LATER_P and op.get("p") == 1.0:
                op.pop("p")  # these ops had no p before the catalogue: an old run keeps its digest
        defaults = Recipe().to_dict()
        for path, default in LATER_KEYS:
            *parents, last = path
            holder, reference = relevant, defaults
            for name in parents:
                holder, reference = holder.get(name, {}), reference.get(name, {})
            if last in holder and holder[last] == (reference.get(last) if default is None else default):
                holder.pop(last)
        return hashlib.sha256(yaml.safe_dump(relevant, sort_keys=True).encode()).hexdigest()[:16]

    def legacy_digest(self) -> str | None:
        """Return the digest the first release gave this recipe (flat keys), or None if it could not express it."""
        return _legacy_digest(self)


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """Return the Recipe a (possibly partial) mapping describes; missing keys keep their defaults."""
    return build(Recipe, canonical(data or {}))


def load_recipe(name_or_path: str = "default", overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Return a named recipe (recipes/<name>.yaml) or a YAML file, with key=value overrides applied."""
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPE_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in RECIPE_DIR.glob("*.yaml")) if RECIPE_DIR.is_dir() else []
        raise CnnlabError(f"no recipe {name_or_path!r}: use one of {', '.join(known)} or a YAML path")
    try:
        data = canonical(yaml.safe_load(path.read_text()) or {})
    except yaml.YAMLError as error:
        raise CnnlabError(f"{path} is not valid YAML ({str(error).splitlines()[0]})") from None
    for item in overrides:
        set_key(data, *parse_pair(item))
    return build(Recipe, data)


def parse_pair(item: str, example: str = "optim.lr=0.05") -> tuple[str, Any]:
    """Return (key, value) of a `key=value` word, the value read as YAML: the one dialect of overrides and options."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise CnnlabError(f"{item!r} must look like key=value, e.g. {example}")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        raise CnnlabError(f"{item!r} has a value YAML cannot read: quote it") from None
    return key.strip(), value


def _legacy_digest(recipe: Recipe) -> str | None:
    """Return the first release's digest of `recipe` (its flat form, runtime keys left out), if it has one."""
    defaults = Recipe()
    new_fields = [
        (recipe.model.whiten_images, defaults.model.whiten_images),
        (recipe.schedule.onecycle_peak_at, defaults.schedule.onecycle_peak_at),
        (recipe.schedule.onecycle_start, defaults.schedule.onecycle_start),
        (recipe.evaluation.batch_size, defaults.evaluation.batch_size),
        (recipe.evaluation.weights, defaults.evaluation.weights),
        (recipe.paradigm, defaults.paradigm),
        (recipe.schedule.cycles, defaults.schedule.cycles),
        (recipe.evaluation.crop, defaults.evaluation.crop),
        (recipe.evaluation.scales, defaults.evaluation.scales),
    ]
    tags = [op.tag for op in recipe.augment]
    if any(a != b for a, b in new_fields) or tags != [t for t in LEGACY_ORDER if t in tags]:
        return None
    if any(isinstance(op, Flip) and op.p != 0.5 for op in recipe.augment):
        return None
    by_tag = {op.tag: op for op in recipe.augment}
    optim = {k: v for k, v in to_plain(recipe.optim).items() if k != "ema_decay"}
    schedule = {k: v for k, v in to_plain(recipe.schedule).items()
                if k not in ("onecycle_peak_at", "onecycle_start", "early_stopping_patience", "cycles")}
    flat = {
        "epochs": recipe.epochs, "batch_size": recipe.batch_size, "optim": optim, "schedule": schedule,
        "augment": {"flip": "flip" in by_tag, "crop_padding": by_tag["translate"].padding if "translate" in by_tag else 0,
                    "cutout": by_tag["cutout"].size if "cutout" in by_tag else 0},
        "seed": recipe.seed,
    }
    sections = {f.name: to_plain(getattr(recipe, f.name)) for f in fields(recipe)}
    for key, place in LEGACY_KEYS.items():
        section, _, name = place.partition(".")
        if (section, name) not in RUNTIME_KEYS:
            flat[key] = sections[section][name]
    return hashlib.sha256(yaml.safe_dump(flat, sort_keys=True).encode()).hexdigest()[:16]


__all__ = [
    "RECIPE_DIR", "DataConfig", "DistillConfig", "ParadigmConfig", "EvaluationConfig", "LossConfig", "ModelConfig", "OptimConfig", "OptimizerName",
    "Precision", "Recipe", "RuntimeConfig", "ScheduleConfig", "ScheduleName", "TTA", "Weights", "load_recipe",
    "recipe_from_dict",
]


def parse_ops(text: str) -> list[Any]:
    """Return raw recipe ops from `flip,rotate:degrees=30,randaugment:n=1:magnitude=9` or a YAML list (key=value as overrides)."""
    text = text.strip()
    if text.startswith("["):
        try:
            ops = yaml.safe_load(text)
        except yaml.YAMLError:
            raise CnnlabError(f"--policy {text!r} is not a YAML list: write [{{op: flip}}, {{op: rotate, degrees: 30}}]") from None
        return list(ops)
    ops: list[Any] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, *pairs = item.split(":")
        op: dict[str, Any] = {"op": name}
        for pair in pairs:
            key, value = parse_pair(pair, "rotate:degrees=30")
            op[key] = value
        ops.append(op)
    if not ops:
        raise CnnlabError("--policy names no op: give a recipe, or ops such as flip,rotate:degrees=30")
    return ops
