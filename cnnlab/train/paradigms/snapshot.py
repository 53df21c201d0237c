"""Snapshot ensembles (Huang et al. 2017): M models from one run, each kept at the end of a learning-rate cycle."""

from __future__ import annotations

from pathlib import Path

from cnnlab.runs.checkpoint import recover
from cnnlab.runs.recipe import Recipe
from cnnlab.train.state import Callback, Context, EpochMetrics


def snapshot_name(index: int) -> str:
    """Return the checkpoint directory name of the index-th snapshot (1-based)."""
    return f"snapshot-{index}"


class Snapshots(Callback):
    """Write checkpoints/snapshot-k at the last epoch of cycle k of the cyclic schedule."""

    # Before checkpoints/last (30): killed between the two, the resumed run repeats the epoch and
    # writes the same snapshot again, so none is ever missing behind a later `last`.
    order = 28

    def __init__(self, directory: Path, recipe: Recipe) -> None:
        self.directory = directory
        self.epochs_per_cycle = recipe.epochs // recipe.schedule.cycles

    def on_epoch_end(self, ctx: Context, metrics: EpochMetrics, is_best: bool) -> None:
        """Keep a snapshot when this epoch ends a cycle."""
        if ctx.state.epoch % self.epochs_per_cycle == 0:
            ctx.save_checkpoint(self.directory / snapshot_name(ctx.state.epoch // self.epochs_per_cycle))


def snapshots_of(run: Path) -> list[str]:
    """Return the snapshot checkpoint names a run holds, in cycle order."""
    for retired in (run / "checkpoints").glob(".snapshot-*-retired"):
        # Killed between the two renames of a rewrite (a resumed cycle): the old snapshot is whole.
        recover(retired.with_name(retired.name[1:].removesuffix("-retired")))
    found = [p.name for p in (run / "checkpoints").glob("snapshot-*") if p.is_dir() and p.name[9:].isdigit()]
    return sorted(found, key=lambda name: int(name[9:]))
