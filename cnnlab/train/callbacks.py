"""Callbacks the CLI attaches to a run: metrics.csv, checkpoints, a progress bar."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cnnlab.train.engine import Callback, EpochMetrics, Trainer, TrainState
from cnnlab.train.rundir import append_metrics


class MetricsCSV(Callback):
    """Append one row per epoch to metrics.csv."""

    order = 20

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, state: TrainState, metrics: EpochMetrics, is_best: bool) -> None:
        """Write the epoch's row."""
        append_metrics(self.path, metrics)


class Checkpoints(Callback):
    """Keep checkpoints/last after every epoch and checkpoints/best at the best validation loss."""

    order = 30

    def __init__(self, trainer: Trainer, directory: Path) -> None:
        self.trainer = trainer
        self.directory = directory

    def on_epoch_end(self, state: TrainState, metrics: EpochMetrics, is_best: bool) -> None:
        """Write last (and best when this epoch is the best so far)."""
        self.trainer.checkpoint(self.directory / "last")
        if is_best:
            self.trainer.checkpoint(self.directory / "best")


class TensorBoard(Callback):
    """Write each epoch's metrics as TensorBoard events into the run directory."""

    order = 25

    def __init__(self, run: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run))

    @staticmethod
    def available() -> bool:
        """Return whether the tensorboard package is installed (it is an optional extra)."""
        import importlib.util

        return importlib.util.find_spec("tensorboard") is not None

    def on_epoch_end(self, state: TrainState, metrics: EpochMetrics, is_best: bool) -> None:
        """Log every metric of the epoch under its metrics.csv column name."""
        for name, value in asdict(metrics).items():
            if name != "epoch":
                self.writer.add_scalar(name, value, metrics.epoch)
        self.writer.flush()

    def on_fit_end(self, state: TrainState) -> None:
        """Close the event file."""
        self.writer.close()


class ProgressBar(Callback):
    """A rich bar over epochs with loss, validation accuracy and throughput."""

    order = 40

    def __init__(self, epochs: int, console: object | None = None) -> None:
        self.progress = Progress(
            TextColumn("epoch"), MofNCompleteColumn(), BarColumn(),
            TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console,
        )
        self.epochs = epochs

    def on_fit_start(self, state: TrainState) -> None:
        """Open the bar at the epoch the run starts from (after a resume, not at zero)."""
        self.progress.start()
        self.task = self.progress.add_task("train", total=self.epochs, completed=state.epoch, status="")

    def on_epoch_end(self, state: TrainState, metrics: EpochMetrics, is_best: bool) -> None:
        """Advance the bar."""
        self.progress.update(
            self.task, completed=state.epoch,
            status=f"loss {metrics.train_loss:.3f}  val acc {metrics.val_acc:.2%}  {metrics.images_per_second:,.0f} img/s",
        )

    def on_fit_end(self, state: TrainState) -> None:
        """Close the bar."""
        self.progress.stop()
