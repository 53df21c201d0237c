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
class ParadigmConfig:
    """Training paradigms; each is off at its defaults."""

    distill: DistillConfig = field(default_factory=DistillConfig)
    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig)
    swa: SWAConfig = field(default_factory=SWAConfig)
