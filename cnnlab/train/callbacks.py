"""Callbacks the CLI attaches to a run: metrics.csv, checkpoints, a progress bar."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

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
    """A rich bar over all steps: epoch, step, last loss and accuracy, images/s and ETA."""

    order = 40

    def __init__(self, epochs: int, steps_per_epoch: int, console: object | None = None) -> None:
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]} step {task.fields[step]}/{task.fields[steps]}"),
            BarColumn(), TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console,
        )
        self.epochs, self.steps = epochs, steps_per_epoch
        self.step_in_epoch = 0
        self.every = max(1, steps_per_epoch // 100)  # about 100 redraws an epoch: the bar costs nothing

    def on_fit_start(self, state: TrainState) -> None:
        """Open the bar where the run starts from (after a resume, not at zero)."""
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=self.epochs * self.steps, completed=state.epoch * self.steps, status="",
            epoch=state.epoch + 1, epochs=self.epochs, step=0, steps=self.steps,
        )

    def on_step_end(self, state: TrainState) -> None:
        """Advance by one step (the counters only: reading the loss would sync the device)."""
        self.step_in_epoch += 1
        if self.step_in_epoch % self.every == 0 or self.step_in_epoch == self.steps:
            self.progress.update(self.task, completed=state.epoch * self.steps + self.step_in_epoch,
                                 epoch=state.epoch + 1, step=self.step_in_epoch)

    def on_epoch_end(self, state: TrainState, metrics: EpochMetrics, is_best: bool) -> None:
        """Show the epoch's loss, accuracies and throughput."""
        self.step_in_epoch = 0
        self.progress.update(
            self.task, completed=state.epoch * self.steps,
            status=(f"loss {metrics.train_loss:.3f}  train acc {metrics.train_acc:.2%}  val acc {metrics.val_acc:.2%}  "
                    f"{metrics.images_per_second:,.0f} img/s"),
        )

    def on_fit_end(self, state: TrainState) -> None:
        """Close the bar."""
        self.progress.stop()
