"""`cnnlab train MODEL --data SPEC`: one training run, from data spec to run directory.

Data are split into train / validation (seeded, `data.val_fraction`) and a separate test set;
the run directory receives recipe.yaml, data.json, metrics.csv, checkpoints/{last,best}/ and
summary.json, whose test figures come from the same function as `cnnlab eval`. `resume`
continues a run from its last checkpoint with its own recipe and model. With no model named,
the small CNN of the `make run` demo is trained (a small U-Net for segmentation data).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from cnnlab import __version__
from cnnlab.data.collection import Images
from cnnlab.data.loader import StreamedImages, sample_indices
from cnnlab.data.normalise import Normalisation
from cnnlab.data.placement import check_fits, model_input_size, place, read_size, too_big
from cnnlab.data.sources import DataSplits, labelled_split, load, shuffle_labels, split
from cnnlab.errors import CnnlabError
from cnnlab.inspect.summary import summary
from cnnlab.models.registry import create_model, model_info
from cnnlab.runs.checkpoint import recover
from cnnlab.runs.info import RunInfo, TaskName
from cnnlab.runs.load import load_run
from cnnlab.runs.recipe import Precision, Recipe, load_recipe
from cnnlab.runs.rundir import mend_metrics, new_run_dir, read_metrics, write_json, write_text
from cnnlab.train.callbacks import Checkpoints, MetricsCSV, ProgressBar, TensorBoard
from cnnlab.train.diagnostics import Diagnostics
from cnnlab.train.distributed import Distributed, init_distributed, shutdown
from cnnlab.train.engine import Trainer
from cnnlab.train.evaluation import score_run
from cnnlab.train.paradigms.distill import TEACHERS, paradigm_task, record_teachers
from cnnlab.train.paradigms.finetune import stage_named, transfer
from cnnlab.train.paradigms.noisy_student import PSEUDO_LABELS, check_teacher_split, pseudo_labelled
from cnnlab.train.paradigms.snapshot import Snapshots
from cnnlab.train.paradigms.swa import StochasticWeightAveraging
from cnnlab.train.tasks import task_for, task_of_targets

DEFAULT_MODEL = {TaskName.CLASSIFICATION: "small_cnn", TaskName.SEGMENTATION: "unet_small"}
# The digits demo, 3 epochs: 9,416 img/s in bf16 against 5,920 in fp32 on a 2-core AMD EPYC (Zen 4,
# avx512_bf16); the hardening issue measured 26 against about 3,000 on a CPU without bf16 instructions.
BF16_ON_CPU = ("precision=bf16 on a CPU without bf16 instructions (avx512_bf16, amx_bf16) is emulated: the digits "
               "demo ran at 26 img/s against about 3,000 in fp32; use precision=fp32 on this CPU")


def cpu_has_bf16() -> bool:
    """Return whether this CPU computes bfloat16 natively (Linux's avx512_bf16 or amx_bf16 flags)."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "").split()
    except OSError:
        return True  # not Linux: no way to tell, so no warning
    return "avx512_bf16" in flags or "amx_bf16" in flags


def device_description(device: torch.device) -> str:
    """Return the device in words: the GPU's name, or the CPU's model name and core count."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    name = ""
    try:
        with open("/proc/cpuinfo") as handle:
            name = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        import platform

        name = platform.processor()
    return f"cpu ({name or 'unknown model'}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def default_recipe(data: str) -> str:
    """Return the recipe a data spec trains with when none is named."""
    if data == "digits":
        return "digits"
    return "segmentation" if data.endswith("-seg") else "default"


def check_input(name: str, input_size: tuple[int, ...]) -> None:
    """Raise a one-line error when the images are smaller than the model accepts."""
    if "/" in name:
        return  # tv/ and timm/ models: their own error, if any, names the size
    info = model_info(name)
    if min(input_size[1:]) < info.min_train_size:
        raise CnnlabError(
            f"{name} needs images of at least {info.min_train_size}x{info.min_train_size} to train, "
            f"these are {input_size[1]}x{input_size[2]}: add input_size={info.min_train_size} (or input_pad=N)"
        )


@dataclass(frozen=True)
class Plan:
    """What to train: the model, the data spec, the recipe, and the run directory when resuming."""

    model: str | None
    spec: str
    recipe: Recipe
    resume: Path | None
    fresh: bool = True  # no checkpoint to continue from: train from the start (in `resume`, if given)


def _plan(model: str | None, data: str, recipe_name: str | None, overrides: tuple[str, ...], resume: str | None) -> Plan:
    """Return the plan of a new run, or of a resumed one read from its own directory."""
    if resume is None:
        return Plan(model, data, load_recipe(recipe_name or default_recipe(data), overrides), None)
    run = Path(resume)
    recover(run / "checkpoints" / "last")  # a kill between the two renames of a swap left it retired
    if not (run / "recipe.yaml").is_file():
        raise CnnlabError(f"{run} is not a run directory (no recipe.yaml): give the folder cnnlab train wrote")
    if not (run / "data.json").is_file():
        raise CnnlabError(f"{run} was stopped before training began (no data.json): delete it and train again with --out {run}")
    previous = RunInfo.read(run)
    if model is not None and model != previous.model:
        raise CnnlabError(f"{run} trains {previous.model}, not {model}: leave the model out to resume")
    # Killed before (or while) writing its first checkpoint: nothing to continue, so it starts afresh.
    fresh = not (run / "checkpoints" / "last").is_dir()
    return Plan(previous.model, previous.spec, load_recipe(str(run / "recipe.yaml"), overrides), run, fresh)


@dataclass(frozen=True)
class Parts:
    """The data of one run, placed: train, validation (or None), test, and how they are read."""

    splits: DataSplits
    train: Images
    val: Images | None
    test: Images
    stream: bool
    pseudo: dict[str, torch.Tensor] | None = None  # Noisy Student's pseudo-labels, kept in the run directory


def _labelled(train: Images, recipe: Recipe,
              resume: Path | None) -> tuple[Images, dict[str, torch.Tensor] | None]:
    """Return the training part with labels (and, for Noisy Student, its teacher's pseudo-labels of the rest)."""
    config = recipe.paradigm.noisy_student
    if config.teacher is not None:
        check_teacher_split(config.teacher, recipe)
    if recipe.data.labelled_fraction is None:
        return train, None
    labelled, unlabelled = labelled_split(train, recipe.data.labelled_fraction, recipe.seed)
    if config.teacher is None:
        return train.subset(labelled), None
    saved = None if resume is None else resume / PSEUDO_LABELS
    return pseudo_labelled(train.subset(labelled), train.subset(unlabelled), config, saved)


def _data(spec: str, data_dir: str | None, recipe: Recipe, dist: Distributed, device: torch.device,
          resume: Path | None = None) -> Parts:
    """Return the run's data split and placed (resident or streamed: rank 0 decides for all)."""
    splits = load(spec, data_dir, seed=recipe.seed, stream=bool(recipe.runtime.stream), resize=recipe.data.input_size)
    if recipe.data.random_labels:
        splits = replace(splits, train=shuffle_labels(splits.train, recipe.seed))
    fraction = recipe.data.val_fraction
    train, val = split(splits.train, fraction, recipe.seed) if fraction > 0 else (splits.train, None)
    if recipe.data.train_images is not None:
        train = _subset(train, recipe.data.train_images, recipe.seed)
    train, pseudo = _labelled(train, recipe, resume)
    size, pad = recipe.data.input_size, recipe.data.input_pad
    check_fits(train, size, pad, recipe.batch_size, device)
    stream = recipe.runtime.stream if recipe.runtime.stream is not None else too_big(train, size, pad, device)
    stream = bool(dist.broadcast(stream))  # every rank must read its data the same way
    train, val, test = (None if part is None else place(part, size, pad, stream, recipe.runtime.workers)
                        for part in (train, val, splits.test))
    return Parts(splits, train, val, test, stream, pseudo)


def _subset(train: Images, count: int, seed: int) -> Images:
    """Return a seeded draw of `count` training images, or one line when there are fewer."""
    if count > len(train):
        raise CnnlabError(f"data.train_images={count} but the training split holds {len(train)} images: "
                          f"use at most {len(train)}, or leave it out")
    return train.subset(sample_indices(len(train), count, seed + 7919))  # a draw of its own, not the split's


def _run_info(plan: Plan, model: str, parts: Parts, trainer: Trainer, input_size: tuple[int, ...]) -> RunInfo:
    """Return the data.json of a run: everything eval and predict need to rebuild its inputs."""
    return RunInfo(
        spec=plan.spec, model=model, classes=tuple(parts.train.classes), mean=trainer.norm.mean, std=trainer.norm.std,
        image_size=tuple(read_size(parts.splits.train, plan.recipe.data.input_size)), input_size=input_size,
        resize=plan.recipe.data.input_size, pad=plan.recipe.data.input_pad, stream=parts.stream, seed=plan.recipe.seed,
        train_images=len(parts.train), val_images=len(parts.val) if parts.val is not None else 0,
        test_images=len(parts.test), skipped_images=parts.splits.skipped, cnnlab=__version__, task=trainer.task.name,
    )


def train_run(
    model: str | None = None,
    data: str = "digits",
    out: str | None = None,
    data_dir: str | None = None,
    recipe_name: str | None = None,
    overrides: tuple[str, ...] = (),
    resume: str | None = None,
    console: Console | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Train `model` on the data spec `data`, write a run directory, return its summary.json."""
    dist, target = init_distributed(device)
    try:
        return _train_run(_plan(model, data, recipe_name, overrides, resume), out, data_dir, console, dist, target)
    finally:
        shutdown(dist)


def _trainer(plan: Plan, parts: Parts, dist: Distributed, target: torch.device, console: Console) -> tuple[str, Trainer]:
    """Return (model name, a Trainer for it) with the task the data's targets imply."""
    task = task_for(task_of_targets(parts.train.labels), len(parts.train.classes), plan.recipe.loss)
    model = plan.model or DEFAULT_MODEL[task.name]
    input_size = model_input_size(parts.train)
    check_input(model, input_size)
    task.check(plan.recipe)
    task = paradigm_task(task, plan.recipe.paradigm.distill, tuple(parts.train.classes), input_size)
    if target.type == "cpu" and plan.recipe.runtime.precision is Precision.BF16 and not cpu_has_bf16():
        console.print(f"warning: {BF16_ON_CPU}")
    torch.manual_seed(plan.recipe.seed)
    network = create_model(model, num_classes=len(parts.train.classes), in_chans=input_size[0])
    norm = _finetune(plan, model, network, console)
    console.print(summary(network, input_size).to_table())
    return model, Trainer(network, plan.recipe, parts.train, parts.val, task=task, device=target, dist=dist,
                          normalisation=norm)


def _finetune(plan: Plan, model: str, network: torch.nn.Module, console: Console) -> Normalisation | None:
    """Return the normalisation a fine-tuned run keeps, after copying the source's weights into a fresh run."""
    config = plan.recipe.paradigm.finetune
    if config.freeze_until is not None:
        stage_named(network, config.freeze_until)  # a name that is no stage fails before anything trains
    if config.source is None:
        return None
    if not plan.fresh:  # resumed: the checkpoint holds the weights, data.json the statistics it started with
        return RunInfo.read(plan.resume).normalisation if config.source_normalisation else None
    copied, norm = transfer(network, model, config)
    console.print(f"fine-tuning from {config.source}: {copied} tensors copied, a fresh head for "
                  f"{network.num_classes} classes" + (", the source's normalisation (mean "
                                                       f"{', '.join(f'{m:.3f}' for m in norm.mean)}, std "
                                                       f"{', '.join(f'{v:.3f}' for v in norm.std)})" if norm else ""))
    return norm


def _open_run(plan: Plan, model: str, out: str | None, dist: Distributed) -> Path:
    """Return the run directory: the resumed one, or a new one (rank 0 makes it and writes recipe.yaml)."""
    if plan.resume is not None:
        return plan.resume
    run: Path | None = None
    if dist.is_main:
        name = f"{plan.spec}-{model}".replace("folder:", "folder-").replace("/", "_").replace("@", "-").strip("_")
        run = new_run_dir(out or f"runs/{name}", exist_ok_suffix=out is None)
        write_text(run / "recipe.yaml", plan.recipe.to_yaml())
    return Path(dist.broadcast(str(run) if run is not None else None))


def _train_run(plan: Plan, out: str | None, data_dir: str | None, console: Console | None,
               dist: Distributed, target: torch.device) -> dict[str, Any]:
    """Train on this process's device (one rank of several under torchrun); rank 0 writes the run."""
    if not dist.is_main:
        console = Console(file=open(os.devnull, "w"))  # noqa: SIM115 - one console per worker process
    console = console or Console(width=max(Console().width, 120))  # the table needs ~110 columns
    parts = _data(plan.spec, data_dir, plan.recipe, dist, target, plan.resume)
    model, trainer = _trainer(plan, parts, dist, target, console)
    run = _open_run(plan, model, out, dist)
    if dist.is_main and parts.pseudo is not None and not (run / PSEUDO_LABELS).is_file():
        from safetensors.torch import save_file

        save_file(parts.pseudo, str(run / PSEUDO_LABELS))
    trainer.run = trainer.context.run = run
    if dist.is_main:  # every rank computes the same metrics; one writes them
        record_teachers(run, trainer.task)
        writers = [MetricsCSV(run / "metrics.csv"), Checkpoints(run / "checkpoints"),
                   ProgressBar(plan.recipe.epochs, trainer.steps_per_epoch, console),
                   *([TensorBoard(run)] if TensorBoard.available() else []),
                   *([Diagnostics(run / "diagnostics.jsonl")] if plan.recipe.diagnostics else []),
                   *([Snapshots(run / "checkpoints", plan.recipe)] if plan.recipe.paradigm.snapshot.enabled else []),
                   *([StochasticWeightAveraging(run / "checkpoints", plan.recipe)]
                     if plan.recipe.paradigm.swa.start_epoch is not None else [])]
        trainer.callbacks = sorted([*trainer.callbacks, *writers], key=lambda c: c.order)
    if not plan.fresh:
        trainer.resume(run / "checkpoints" / "last")
    if dist.is_main:
        # metrics.csv describes exactly the epochs of the weights training continues from.
        mend_metrics(run / "metrics.csv", trainer.state.epoch, trainer.state.last_row)
        if trainer.state.epoch and not trainer.state.seconds:
            trainer.state.seconds = _earlier_seconds(run, trainer.state.epoch)
    if not dist.is_main:
        return {"model": model, "epochs": trainer.fit().epoch, "rank": dist.rank}
    _run_info(plan, model, parts, trainer, model_input_size(parts.train)).write(run)
    try:
        trainer.fit()
    except KeyboardInterrupt:
        # Not a checkpoint of half an epoch: resume continues from the last epoch boundary, exactly.
        console.print(f"interrupted: the last checkpoint is the end of epoch {_saved_epoch(run)}; "
                      f"continue with cnnlab train --resume {run}")
        raise
    return _finish(run, parts, trainer, model, target, console)


def _earlier_seconds(run: Path, epoch: int) -> float:
    """Return the time the sessions before a resume spent on `epoch` epochs, for a checkpoint that kept none.

    Checkpoints of the first release hold no `seconds` counter; without this a resumed run's
    training_seconds would count its last session only. summary.json's figure (training and
    validation) when it describes these epochs, else metrics.csv's (training only: a lower bound).
    """
    import json

    try:
        summary = json.loads((run / "summary.json").read_text())
        if summary.get("epochs") == epoch and isinstance(summary.get("training_seconds"), int | float):
            return float(summary["training_seconds"])
    except (OSError, ValueError, AttributeError):
        pass  # no (readable) summary: the per-epoch rows are the record left
    try:
        rows = read_metrics(run / "metrics.csv")
    except CnnlabError:
        return 0.0  # damaged rows: resuming matters more than the clock
    return sum(row.get("seconds", 0.0) for row in rows if row.get("epoch", 0) <= epoch)


def _saved_epoch(run: Path) -> int:
    """Return the epoch of the run's last checkpoint (0 when it has none)."""
    from cnnlab.runs.checkpoint import load_checkpoint

    try:
        return int(load_checkpoint(run / "checkpoints" / "last")[1].get("epoch", 0))
    except CnnlabError:
        return 0


def _finish(run: Path, parts: Parts, trainer: Trainer, model: str, device: torch.device,
            console: Console) -> dict[str, Any]:
    """Score the run as `cnnlab eval` does, write summary.json, print the headline; return the summary."""
    state = trainer.state
    seconds = state.seconds  # every segment of a resumed run, not only the last
    scored = load_run(run, device=device, verify=False)  # summary.json is about to describe these weights
    scores = score_run(scored, parts.test)
    skipped = parts.splits.skipped + sum(p.skipped for p in (parts.train, parts.val, parts.test)
                                         if isinstance(p, StreamedImages))
    headline = {k: scores[k] for k in ("top1", "top5", "pixel_acc", "miou") if k in scores}
    result = {
        "run": str(run),
        "model": model,
        **{f"best_val_{k}": v for k, v in state.best.items() if k != "loss"},
        "best_epoch": state.best_epoch,
        **{f"test_{k}": v for k, v in headline.items()},
        "test_loss": scores["loss"],
        "weights": scores["weights"],  # with the weights' digest, which load_run checks
        "tta": scores["tta"],
        "epochs": state.epoch,
        "training_seconds": round(seconds, 3),
        "device": device_description(device),
        "test_images": len(parts.test),
        "stop_reason": state.stop_reason,
        "skipped_images": skipped,
    }
    if (run / TEACHERS).is_file():
        import json

        result["teachers"] = json.loads((run / TEACHERS).read_text())
    write_json(run / "summary.json", result)
    if skipped:
        console.print(f"skipped {skipped} unreadable images")
    if "top1" in headline:
        figures = f"accuracy {headline['top1']:.2%} (top-5 {headline['top5']:.2%})"
    else:
        figures = f"pixel accuracy {headline['pixel_acc']:.2%}, mIoU {headline['miou']:.3f}"
    console.print(f"test {figures} on {scores['images']} held-out images after {state.epoch} epochs "
                  f"({seconds:.1f} s, {scores['weights']['checkpoint']} weights); run directory: {run}")
    return result


def train_or_resume(run: Path, *, model: str, data: str, recipe_name: str | None, overrides: tuple[str, ...],
                    data_dir: str | None = None, device: str = "auto", console: Console | None = None) -> dict[str, Any]:
    """Return the summary of the run at `run`: kept when finished, resumed when interrupted, else trained afresh."""
    if (run / "summary.json").is_file():
        import json

        return json.loads((run / "summary.json").read_text())
    if (run / "data.json").is_file():  # interrupted: continue it
        return train_run(resume=str(run), data_dir=data_dir, console=console, device=device)
    if run.exists():
        import shutil

        shutil.rmtree(run)  # stopped before training began: nothing to keep
    return train_run(model=model, data=data, out=str(run), data_dir=data_dir, recipe_name=recipe_name,
                     overrides=overrides, console=console, device=device)
