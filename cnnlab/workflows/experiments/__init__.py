"""The course's experiments, one command each: a set of arms, one run directory per arm, and a table."""

from cnnlab.workflows.experiments.ablation import ABLATION
from cnnlab.workflows.experiments.base import (
    Arm,
    Budget,
    Claim,
    Experiment,
    run_experiment,
    table_markdown,
)
from cnnlab.workflows.experiments.degradation import DEGRADATION
from cnnlab.workflows.experiments.shuffled import SHUFFLED_PIXELS
from cnnlab.workflows.experiments.transferability import TRANSFERABILITY

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (ABLATION, DEGRADATION, SHUFFLED_PIXELS, TRANSFERABILITY)}

__all__ = ["EXPERIMENTS", "Arm", "Budget", "Claim", "Experiment", "run_experiment", "table_markdown"]
