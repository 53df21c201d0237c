"""The recipe's `paradigm:` section: how a run learns beyond plain supervised training.

Each paradigm is a typed subsection, off at its defaults, so a recipe without one trains as it
always did and keeps its digest (cnnlab.runs.recipe.LATER_KEYS).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cnnlab.errors import CnnlabError


def _check(checks: list[tuple[bool, str]]) -> None:
    for ok, message in checks:
        if not ok:
            raise CnnlabError(f"recipe: {message}")


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation (Hinton et al. 2015): the student also matches its teachers' softened outputs."""

    # Run directories of the teachers; their probabilities at the temperature are averaged, so
    # several runs teach as one ensemble (Hinton et al.'s Sec. 3). Empty: no distillation.
    teachers: tuple[str, ...] = ()
    # Divides teacher and student logits alike; the paper's MNIST nets used 8 to 20 (their Sec. 3),
    # 4 is the value most reproductions start from.
    temperature: float = 4.0
    # Weight of the soft term, which is multiplied by T^2 so its gradients keep their scale when T
    # changes (their Sec. 2); the labels' cross-entropy gets 1 - alpha.
    alpha: float = 0.9

    def __post_init__(self) -> None:
        _check([
            (self.temperature > 0, "paradigm.distill.temperature must be > 0"),
            (0.0 <= self.alpha <= 1.0, "paradigm.distill.alpha must lie in [0, 1]"),
        ])


@dataclass(frozen=True)
class SnapshotConfig:
    """Snapshot ensembles (Huang et al. 2017): one model kept at the end of each cycle of a cyclic schedule."""

    # Writes checkpoints/snapshot-1 ... snapshot-M (M = schedule.cycles), each at the low point of
    # its cycle; `cnnlab eval RUN --snapshots` scores their ensemble.
    enabled: bool = False


@dataclass(frozen=True)
class SWAConfig:
    """Stochastic weight averaging (Izmailov et al. 2018): the mean of the weights at the ends of the last epochs."""

    # Average the weights at the end of this epoch and of every later one; None: off. Izmailov et
    # al. average over the last quarter or so of the budget, with a constant or cyclic rate there.
    # The average's BatchNorm statistics are recomputed on the training images when training
    # ends, and it is kept as checkpoints/swa, which the final score then uses.
    start_epoch: int | None = None

    def __post_init__(self) -> None:
        _check([(self.start_epoch is None or self.start_epoch >= 1, "paradigm.swa.start_epoch must be >= 1 (or null)")])


@dataclass(frozen=True)
class NoisyStudentConfig:
    """Noisy Student (Xie et al. 2020): train on the labelled part and on a teacher's labels for the unlabelled part."""

    # Run directory of the teacher, trained with the same data.labelled_fraction; None: off. Its
    # labels for the unlabelled part are made once, unnoised (eval mode, no augmentation: their
    # Sec. 2), and kept in the run as pseudo_labels.safetensors, so a resumed round reads them back.
    teacher: str | None = None
    # Soft pseudo-labels (the teacher's probabilities) or hard ones (its arg-max); Xie et al. found
    # soft slightly better out of domain and both alike in domain (their Sec. 4.2).
    soft: bool = True
    # Unlabelled images whose top probability is below this are dropped (Xie et al. used 0.3).
    threshold: float = 0.0
    # Class balancing (their Sec. 2): every class gets as many pseudo-labelled images as the mean
    # class; the most confident of a larger class are kept, a smaller class's are repeated.
    balance: bool = True

    def __post_init__(self) -> None:
        _check([(0.0 <= self.threshold < 1.0, "paradigm.noisy_student.threshold must lie in [0, 1)")])


@dataclass(frozen=True)
class FinetuneConfig:
    """Transfer learning: start from another run's (or a weights file's) weights, with a new head."""

    # A run directory, or a .safetensors / .pt(h) state dict of the same architecture (read with
    # weights_only); None: off. The classifier is always replaced by a fresh one for the new classes.
    source: str | None = None
    # Copy only the first N stages (top-level layers with parameters, input to output) and
    # initialise the rest afresh, as Yosinski et al. 2014 transfer n layers; None: every stage.
    layers: int | None = None
    # Freeze the stages up to and including this one (a top-level layer name such as layer3);
    # None: nothing frozen. Frozen weights get no updates; BatchNorm statistics still adapt.
    freeze_until: str | None = None
    # Thaw one more frozen stage, deepest first, every this many epochs (ULMFiT's gradual
    # unfreezing, Howard & Ruder 2018); 0: the frozen stages stay frozen.
    unfreeze_every: int = 0
    # Discriminative learning rates: each stage below the head trains at lr times this power of
    # its distance from the head (the head at lr, the stage before it at lr * decay, ...); 1: one rate.
    lr_decay: float = 1.0
    # Normalise inputs with the source's mean and std (deck 004: a network expects the inputs it
    # learnt on), not the new data's. A weights file has no statistics of its own: it takes
    # `mean` and `std` below, ImageNet's by default for tv/ and timm/ models.
    source_normalisation: bool = True
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        _check([
            (self.layers is None or self.layers >= 0, "paradigm.finetune.layers must be >= 0 (or null for all)"),
            (self.unfreeze_every >= 0, "paradigm.finetune.unfreeze_every must be >= 0"),
            (0.0 < self.lr_decay <= 1.0, "paradigm.finetune.lr_decay must lie in (0, 1]"),
            ((self.mean is None) == (self.std is None), "paradigm.finetune.mean and std go together"),
        ])


@dataclass(frozen=True)
class ParadigmConfig:
    """Training paradigms; each is off at its defaults."""

    distill: DistillConfig = field(default_factory=DistillConfig)
    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig)
    swa: SWAConfig = field(default_factory=SWAConfig)
    noisy_student: NoisyStudentConfig = field(default_factory=NoisyStudentConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
