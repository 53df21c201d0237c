"""One run's session: the network, the open run directory and the Trainer, built complete before any step runs.

The run directory is opened before the Trainer is built, so the Trainer receives it and every
callback that writes into it at construction and sorts them once; nothing is attached to it
afterwards. A fresh run directory whose Trainer cannot be built (a recipe the data refuse) is
removed again, so a refused run leaves nothing behind, as before it was opened. Building a
callback writes nothing: files appear once training starts.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from torch import nn

from cnnlab.data.normalise import Normalisation
from cnnlab.data.placement import model_input_size
from cnnlab.devices import cpu_has_bf16
from cnnlab.errors import CnnlabError
from cnnlab.inspect.summary import summary
from cnnlab.models.registry import create_model, is_detector, model_info
from cnnlab.runs.info import RunInfo, TaskName
from cnnlab.runs.recipe import Precision, Recipe
from cnnlab.runs.rundir import new_run_dir, write_text
from cnnlab.train.callbacks import Checkpoints, MetricsCSV, ProgressBar, TensorBoard
from cnnlab.train.diagnostics import Diagnostics
from cnnlab.train.distributed import Distributed
from cnnlab.train.engine import Trainer, steps_per_epoch
from cnnlab.train.paradigms.distill import paradigm_task, record_teachers
from cnnlab.train.paradigms.finetune import stage_named, transfer
from cnnlab.train.paradigms.pseudo_labels import PSEUDO_LABELS
from cnnlab.train.paradigms.snapshot import Snapshots
from cnnlab.train.paradigms.swa import StochasticWeightAveraging
from cnnlab.train.parts import Parts
from cnnlab.train.state import Callback
from cnnlab.train.tasks import Task, task_for, task_of_targets

DEFAULT_MODEL = {TaskName.CLASSIFICATION: "small_cnn", TaskName.SEGMENTATION: "unet_small", TaskName.DETECTION: "yolo_v1"}
# The digits demo, 3 epochs: 9,416 img/s in bf16 against 5,920 in fp32 on a 2-core AMD EPYC (Zen 4,
# avx512_bf16); the hardening issue measured 26 against about 3,000 on a CPU without bf16 instructions.
BF16_ON_CPU = ("precision=bf16 on a CPU without bf16 instructions (avx512_bf16, amx_bf16) is emulated: the digits "
               "demo ran at 26 img/s against about 3,000 in fp32; use precision=fp32 on this CPU")


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


@dataclass(frozen=True)
class Network:
    """A run's network before training: the model's name, the module, the task it trains, fixed input statistics."""

    name: str
    module: nn.Module
    task: Task
    normalisation: Normalisation | None  # a fine-tuned source's; None: measured on the training set


@dataclass(frozen=True)
class Session:
    """One run ready to train: the model's name, its run directory and the Trainer built complete for it."""

    model: str
    run: Path
    trainer: Trainer


def open_session(plan: Plan, parts: Parts, out: str | None, dist: Distributed, target: torch.device,
                 console: Console) -> Session:
    """Return the run's Session: the network built, the run directory opened, then the Trainer with every callback."""
    network = build_network(plan, parts, target, console)
    made = out is None or not Path(out).is_dir()  # an empty folder the user gave is theirs to keep
    run = _open_run(plan, network.name, out, dist)
    # The progress bar is built before the Trainer, with the count the Trainer will use.
    steps = steps_per_epoch(len(parts.train), plan.recipe.batch_size)
    # Every rank computes the same metrics; rank 0 writes them and shows the bar.
    callbacks = run_callbacks(plan.recipe, run, steps, console) if dist.is_main else []
    try:
        trainer = Trainer(network.module, plan.recipe, parts.train, parts.val, task=network.task, device=target,
                          callbacks=callbacks, dist=dist, run=run, normalisation=network.normalisation)
        if dist.is_main:
            _keep_pseudo_labels(run, parts)
            record_teachers(run, trainer.task)  # the teachers are loaded once the Trainer attaches its task
    except BaseException:
        if plan.resume is None and dist.is_main:
            _discard(run, made)
        raise
    return Session(network.name, run, trainer)


def build_network(plan: Plan, parts: Parts, target: torch.device, console: Console) -> Network:
    """Return the run's network with the task the data's targets imply, seeded, fine-tuned when the recipe says so."""
    task = task_for(task_of_targets(parts.train.labels), len(parts.train.classes), plan.recipe.loss)
    model = plan.model or DEFAULT_MODEL[task.name]
    if is_detector(model) != (task.name is TaskName.DETECTION):  # before the size: the wrong kind of model is the news
        raise CnnlabError(f"{model} is a detector and {plan.spec} has no boxes: train it on detection data (mnist-det, "
                          "coco:PATH)" if is_detector(model) else
                          f"{plan.spec} holds boxes and {model} is no detector: train yolo_v1, centernet or a tv/ detector")
    input_size = model_input_size(parts.train)
    check_input(model, input_size)
    task.check(plan.recipe)
    task = paradigm_task(task, plan.recipe.paradigm.distill, tuple(parts.train.classes), input_size)
    if target.type == "cpu" and plan.recipe.runtime.precision is Precision.BF16 and not cpu_has_bf16():
        console.print(f"warning: {BF16_ON_CPU}")
    torch.manual_seed(plan.recipe.seed)
    network = create_model(model, num_classes=len(parts.train.classes), in_chans=input_size[0], input_size=input_size[1])
    if plan.recipe.model.backbone:
        _start_backbone(network, plan.recipe.model.backbone, console)
    norm = _finetune(plan, model, network, console)
    console.print(summary(network, input_size).to_table())
    return Network(model, network, task, norm)


def _start_backbone(network: nn.Module, source: str, console: Console) -> None:
    """Load a run's (or a weights file's) classifier weights into a detector's backbone, with one line saying so."""
    from safetensors.torch import load_file

    from cnnlab.runs.load import load_run

    if not hasattr(network, "load_backbone"):
        raise CnnlabError(f"model.backbone={source} starts a detector's backbone; {type(network).__name__} is no detector: "
                          "leave model.backbone out (finetune starts a classifier from a run)")
    path = Path(source)
    if path.is_dir():
        state = load_run(path).model.state_dict()
    elif path.suffix == ".safetensors" and path.is_file():
        state = load_file(str(path))
    else:
        raise CnnlabError(f"model.backbone={source} is neither a run directory nor a .safetensors file: give one")
    taken = network.load_backbone({k: v.detach().cpu() for k, v in state.items()}, source)
    console.print(f"backbone: {taken} tensors from {source}")


def run_callbacks(recipe: Recipe, run: Path, steps_per_epoch: int, console: Console) -> list[Callback]:
    """Return the callbacks that write the run directory and show progress (the recipe's own, the Trainer adds)."""
    checkpoints = run / "checkpoints"
    return [MetricsCSV(run / "metrics.csv"), Checkpoints(checkpoints), ProgressBar(recipe.epochs, steps_per_epoch, console),
            *([TensorBoard(run)] if TensorBoard.available() else []),
            *([Diagnostics(run / "diagnostics.jsonl")] if recipe.diagnostics else []),
            *([Snapshots(checkpoints, recipe)] if recipe.paradigm.snapshot.enabled else []),
            *([StochasticWeightAveraging(checkpoints, recipe)] if recipe.paradigm.swa.start_epoch is not None else [])]


def _keep_pseudo_labels(run: Path, parts: Parts) -> None:
    """Write Noisy Student's pseudo-labels into the run directory once, so a resumed round trains on the same ones."""
    if parts.pseudo is not None and not (run / PSEUDO_LABELS).is_file():
        from safetensors.torch import save_file

        save_file(parts.pseudo, str(run / PSEUDO_LABELS))


def _discard(run: Path, made: bool) -> None:
    """Remove what a fresh run wrote before it was refused (recipe.yaml, teachers, pseudo-labels), and the folder if made."""
    for path in run.iterdir():
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    if made:
        run.rmdir()


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

