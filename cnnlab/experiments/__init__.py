"""The course's experiments, one command each: a set of arms, one run directory per arm, and a table."""

from cnnlab.experiments.base import Arm, Budget, Claim, Experiment, run_experiment, table_markdown
from cnnlab.experiments.degradation import DEGRADATION

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (DEGRADATION,)}

__all__ = ["EXPERIMENTS", "Arm", "Budget", "Claim", "Experiment", "run_experiment", "table_markdown"]
