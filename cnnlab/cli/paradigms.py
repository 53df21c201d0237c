"""`cnnlab distill`, `cnnlab noisy-student` and `cnnlab finetune`: paradigms that train from other runs, as run directories."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.cli.domains import Text
from cnnlab.cli.numeric import Integer, Number
from cnnlab.cli.options import Spec, add, option
from cnnlab.cli.reconcile import combine

MODEL = {"metavar": "MODEL"}
RUN = {"metavar": "RUN"}


def _run_options(parser: argparse.ArgumentParser, out_help: str, each: str = "", seeded: str = "") -> None:
    """Add what every command that trains runs shares: epochs, seed, --out, device and recipe overrides."""
    add(parser, "epochs", help=f"epochs {each}(shortcut for epochs=N)")
    add(parser, "seed", help=f"shortcut for seed=N{seeded} (0 is a seed)")
    add(parser, "out_run", help=out_help)
    add(parser, "device")
    add(parser, "overrides", help=f"recipe overrides key=value {each}".rstrip())


def register(commands: argparse._SubParsersAction) -> None:
    """Add the distill, noisy-student and finetune commands."""
    distill = commands.add_parser("distill", help="knowledge distillation: train a student model on teacher runs' soft targets")
    option(distill, Spec("model", Text(), "zoo name of the student, e.g. lenet5_tiny", nargs="?", deprecated=("--student",),
                         extra=MODEL))
    option(distill, Spec("--teacher", Text(), "run directory of a teacher; repeat it for an ensemble teacher (probabilities averaged)",
                         required=True, extra={"action": "append", **RUN}))
    add(distill, "data", help="data spec (default: the first teacher's)")
    add(distill, "data_dir")
    add(distill, "recipe", help="recipe name or YAML path (default: the first teacher's recipe.yaml)")
    option(distill, Spec("--temperature", Number(0, open_low=True), "shortcut for paradigm.distill.temperature"))
    option(distill, Spec("--alpha", Number(0, 1), "shortcut for paradigm.distill.alpha (weight of the soft term)"))
    _run_options(distill, "run directory (default runs/DATA-STUDENT, never overwritten)")
    distill.set_defaults(func=run_distill)

    noisy = commands.add_parser("noisy-student", help="Noisy Student: a teacher on the labelled part, then rounds of noised students")
    option(noisy, Spec("model", Text(), "zoo name of the students: equal or larger than the teacher, with dropout",
                       "lenet5_dropout", nargs="?", deprecated=("--student-model",), extra=MODEL))
    add(noisy, "data", required=True)
    add(noisy, "data_dir")
    option(noisy, Spec("--labelled-fraction", Number(0, 1, open_low=True),
                       "fraction of the training split whose labels are kept (seeded, class-balanced), e.g. 0.01", required=True))
    option(noisy, Spec("--rounds", Integer(1, 100), "students, each taught by the one before", 3))
    option(noisy, Spec("--teacher-model", Text(), "zoo name of the first teacher", "lenet5", extra=MODEL))
    add(noisy, "recipe", help="recipe of every round; its augment is the students' input noise")
    option(noisy, Spec("--teacher-epochs", Integer(1, 1_000_000), "epochs of the first teacher only"))
    option(noisy, Spec("--hard", None, "hard pseudo-labels (arg-max) instead of the teacher's probabilities"))
    option(noisy, Spec("--threshold", Number(0, 1, open_high=True), "drop unlabelled images the teacher is less sure of"))
    option(noisy, Spec("--no-balance", None, "keep the pseudo-labels' own class counts"))
    _run_options(noisy, "folder of the rounds' run directories (default runs/noisy-student-DATA)", "of every round ",
                 " (the labelled draw too)")
    noisy.set_defaults(func=run_noisy_student)

    tune = commands.add_parser("finetune", help="transfer learning: start from a run's (or a weights file's) weights, new head")
    option(tune, Spec("source", Text(), "run directory, or a .safetensors / .pth state dict (then name the model)",
                      extra={"metavar": "SOURCE"}))
    option(tune, Spec("model", Text(), "zoo, tv/ or timm/ name of a weights file's architecture (a run knows its own)",
                      nargs="?", deprecated=("--model",), extra=MODEL))
    add(tune, "data", required=True, help="data spec of the new task, e.g. cifar10@vehicles")
    add(tune, "data_dir")
    add(tune, "recipe", help="recipe name or YAML path (default: the source run's recipe.yaml)")
    option(tune, Spec("--freeze-until", Text(), "freeze the stages up to this one, e.g. layer3 (shortcut)",
                      extra={"metavar": "LAYER"}))
    option(tune, Spec("--unfreeze-every", Integer(1, 1_000_000), "thaw one more stage every N epochs"))
    option(tune, Spec("--lr-decay", Number(0, 1, open_low=True), "discriminative rates: each stage below the head x this"))
    option(tune, Spec("--layers", Integer(1, 10_000), "transfer only the first N stages (Yosinski et al. 2014)"))
    _run_options(tune, "run directory (default runs/DATA-MODEL, never overwritten)")
    tune.set_defaults(func=run_finetune)


def run_distill(args: argparse.Namespace) -> int:
    """Train the student with the teachers named in its recipe's paradigm.distill section."""
    from cnnlab.errors import CnnlabError
    from cnnlab.runs.info import RunInfo
    from cnnlab.runs.outputs import cleaned, refuse_run_dir
    from cnnlab.train.run import train_run

    teachers = [str(Path(t).resolve()) for t in args.teacher]  # the recipe must still find them from elsewhere
    first = RunInfo.read(Path(teachers[0]))
    shortcuts = [f"{key}={value}" for key, value in (
        ("paradigm.distill.temperature", args.temperature), ("paradigm.distill.alpha", args.alpha),
        ("epochs", args.epochs), ("seed", args.seed)) if value is not None]
    if args.model is None:
        raise CnnlabError("name the student model, e.g. cnnlab distill lenet5_tiny --teacher RUN")
    if args.out is not None:
        refuse_run_dir(Path(args.out).parent)  # a run inside another run's folder
    with cleaned(args.out):
        result = train_run(model=args.model, data=args.data or first.spec, out=args.out, data_dir=args.data_dir,
                           recipe_name=args.recipe or str(Path(teachers[0]) / "recipe.yaml"),
                           # The teacher's own paradigms (its snapshots, its averaging) are not the student's.
                           overrides=("paradigm.snapshot.enabled=false", "paradigm.swa.start_epoch=null",
                                      f"paradigm.distill.teachers={json.dumps(teachers)}", *combine(shortcuts, args.overrides)),
                           device=args.device)
    return 0 if result else 1


def run_noisy_student(args: argparse.Namespace) -> int:
    """Train (or resume) the teacher and the rounds, print each one's test accuracy, write rounds.json."""
    from cnnlab.runs.outputs import cleaned, refuse_run_dir
    from cnnlab.workflows.noisy_student import noisy_student

    shortcuts = [f"{key}={value}" for key, value in (
        ("epochs", args.epochs), ("seed", args.seed), ("paradigm.noisy_student.threshold", args.threshold),
        ("paradigm.noisy_student.soft", "false" if args.hard else None),
        ("paradigm.noisy_student.balance", "false" if args.no_balance else None)) if value is not None]
    out = Path(args.out or f"runs/noisy-student-{args.data}".replace("@", "-").replace(":", "-"))
    refuse_run_dir(out)
    with cleaned(out):
        table = noisy_student(args.data, args.teacher_model, args.model, out, args.labelled_fraction, args.rounds,
                              args.recipe, combine(shortcuts, args.overrides),
                              (f"epochs={args.teacher_epochs}",) if args.teacher_epochs else (),
                              args.data_dir, args.device)
    for row in table["rounds"]:
        print(f"{row['name']:<9} {row['model']:<16} test top-1 {row['test_top1']:.2%}  ({row['seconds']:.0f} s)  {row['run']}")
    print(f"wrote {out / 'rounds.json'}")
    return 0


def run_finetune(args: argparse.Namespace) -> int:
    """Train a run that starts from the source's weights, with the paradigm.finetune section the flags give."""
    from cnnlab.errors import CnnlabError
    from cnnlab.runs.info import RunInfo
    from cnnlab.runs.outputs import cleaned, refuse_run_dir
    from cnnlab.train.run import train_run

    source = Path(args.source).expanduser().resolve()
    if source.is_dir():
        model = args.model or RunInfo.read(source).model
        recipe = args.recipe or str(source / "recipe.yaml")
    elif source.suffix.lower() not in (".safetensors", ".pth", ".pt"):
        raise CnnlabError(f"{args.source} is neither a run directory nor a weights file (.safetensors, .pth): give one of those")
    elif args.model is None:
        raise CnnlabError(f"{args.source} is a weights file: name its architecture after it, e.g. cnnlab finetune {args.source} tv/resnet18")
    else:
        model, recipe = args.model, args.recipe
    shortcuts = [f"{key}={value}" for key, value in (
        ("paradigm.finetune.freeze_until", args.freeze_until), ("paradigm.finetune.unfreeze_every", args.unfreeze_every),
        ("paradigm.finetune.lr_decay", args.lr_decay), ("paradigm.finetune.layers", args.layers),
        ("epochs", args.epochs), ("seed", args.seed)) if value is not None]
    # The source's own paradigms are not the new run's, nor are the subsets it drew of its own data.
    inherited = ("paradigm.snapshot.enabled=false", "paradigm.swa.start_epoch=null", "paradigm.distill.teachers=[]",
                 "paradigm.noisy_student.teacher=null", "data.train_images=null",
                 "data.labelled_fraction=null") if source.is_dir() and args.recipe is None else ()
    if args.out is not None:
        refuse_run_dir(Path(args.out).parent)  # a run inside another run's folder
    with cleaned(args.out):
        result = train_run(model=model, data=args.data, out=args.out, data_dir=args.data_dir, recipe_name=recipe,
                           overrides=(*inherited, f"paradigm.finetune.source={json.dumps(str(source))}",
                                      *combine(shortcuts, args.overrides)), device=args.device)
    return 0 if result else 1
