"""`cnnlab distill`, `cnnlab noisy-student` and `cnnlab finetune`: paradigms that train from other runs, as run directories."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.cli.common import positive_float, positive_int


def register(commands: argparse._SubParsersAction) -> None:
    """Add the distill command."""
    distill = commands.add_parser("distill", help="knowledge distillation: train a student model on teacher runs' soft targets")
    distill.add_argument("--teacher", action="append", required=True,
                         help="run directory of a teacher; repeat it for an ensemble teacher (probabilities averaged)")
    distill.add_argument("--student", required=True, help="zoo name of the student, e.g. lenet5_tiny")
    distill.add_argument("--data", default=None, help="data spec (default: the first teacher's)")
    distill.add_argument("--data-dir", default=None)
    distill.add_argument("--recipe", default=None, help="recipe name or YAML path (default: the first teacher's recipe.yaml)")
    distill.add_argument("--temperature", type=positive_float, default=None, help="shortcut for paradigm.distill.temperature")
    distill.add_argument("--alpha", type=float, default=None, help="shortcut for paradigm.distill.alpha (weight of the soft term)")
    distill.add_argument("--epochs", type=positive_int, default=None, help="shortcut for epochs=N")
    distill.add_argument("--seed", type=int, default=None, help="shortcut for seed=N")
    distill.add_argument("--out", default=None, help="run directory (default runs/DATA-STUDENT)")
    distill.add_argument("--device", default="auto")
    distill.add_argument("overrides", nargs="*", help="recipe overrides key=value")
    distill.set_defaults(func=run_distill)

    noisy = commands.add_parser("noisy-student", help="Noisy Student: a teacher on the labelled part, then rounds of noised students")
    noisy.add_argument("--data", required=True, help="data spec, e.g. mnist")
    noisy.add_argument("--data-dir", default=None)
    noisy.add_argument("--labelled-fraction", type=positive_float, required=True,
                       help="fraction of the training split whose labels are kept (seeded, class-balanced), e.g. 0.01")
    noisy.add_argument("--rounds", type=positive_int, default=3, help="students, each taught by the one before (default 3)")
    noisy.add_argument("--teacher-model", default="lenet5", help="zoo name of the first teacher (default lenet5)")
    noisy.add_argument("--student-model", default="lenet5_dropout",
                       help="zoo name of the students: equal or larger, with dropout (default lenet5_dropout)")
    noisy.add_argument("--recipe", default=None, help="recipe of every round; its augment is the students' input noise")
    noisy.add_argument("--teacher-epochs", type=positive_int, default=None, help="epochs of the first teacher only")
    noisy.add_argument("--epochs", type=positive_int, default=None, help="epochs of every round (shortcut for epochs=N)")
    noisy.add_argument("--hard", action="store_true", help="hard pseudo-labels (arg-max) instead of the teacher's probabilities")
    noisy.add_argument("--threshold", type=float, default=None, help="drop unlabelled images the teacher is less sure of")
    noisy.add_argument("--no-balance", action="store_true", help="keep the pseudo-labels' own class counts")
    noisy.add_argument("--seed", type=int, default=None, help="shortcut for seed=N (the labelled draw too)")
    noisy.add_argument("--out", default=None, help="folder of the rounds (default runs/noisy-student-DATA)")
    noisy.add_argument("--device", default="auto")
    noisy.add_argument("overrides", nargs="*", help="recipe overrides key=value for every round")
    noisy.set_defaults(func=run_noisy_student)

    tune = commands.add_parser("finetune", help="transfer learning: start from a run's (or a weights file's) weights, new head")
    tune.add_argument("source", help="run directory, or a .safetensors / .pth state dict (then give --model)")
    tune.add_argument("--data", required=True, help="data spec of the new task, e.g. cifar10@vehicles")
    tune.add_argument("--data-dir", default=None)
    tune.add_argument("--model", default=None, help="zoo, tv/ or timm/ name of a weights file's architecture (a run knows its own)")
    tune.add_argument("--recipe", default=None, help="recipe name or YAML path (default: the source run's recipe.yaml)")
    tune.add_argument("--freeze-until", default=None, help="freeze the stages up to this one, e.g. layer3 (shortcut)")
    tune.add_argument("--unfreeze-every", type=positive_int, default=None, help="thaw one more stage every N epochs")
    tune.add_argument("--lr-decay", type=positive_float, default=None, help="discriminative rates: each stage below the head x this")
    tune.add_argument("--layers", type=int, default=None, help="transfer only the first N stages (Yosinski et al. 2014)")
    tune.add_argument("--epochs", type=positive_int, default=None, help="shortcut for epochs=N")
    tune.add_argument("--seed", type=int, default=None, help="shortcut for seed=N")
    tune.add_argument("--out", default=None, help="run directory (default runs/DATA-MODEL)")
    tune.add_argument("--device", default="auto")
    tune.add_argument("overrides", nargs="*", help="recipe overrides key=value")
    tune.set_defaults(func=run_finetune)


def run_distill(args: argparse.Namespace) -> int:
    """Train the student with the teachers named in its recipe's paradigm.distill section."""
    from cnnlab.runs.info import RunInfo
    from cnnlab.train.run import train_run

    teachers = [str(Path(t).resolve()) for t in args.teacher]  # the recipe must still find them from elsewhere
    first = RunInfo.read(Path(teachers[0]))
    shortcuts = [f"{key}={value}" for key, value in (
        ("paradigm.distill.temperature", args.temperature), ("paradigm.distill.alpha", args.alpha),
        ("epochs", args.epochs), ("seed", args.seed)) if value is not None]
    result = train_run(model=args.student, data=args.data or first.spec, out=args.out, data_dir=args.data_dir,
                       recipe_name=args.recipe or str(Path(teachers[0]) / "recipe.yaml"),
                       # The teacher's own paradigms (its snapshots, its averaging) are not the student's.
                       overrides=("paradigm.snapshot.enabled=false", "paradigm.swa.start_epoch=null",
                                  f"paradigm.distill.teachers={json.dumps(teachers)}", *shortcuts, *args.overrides),
                       device=args.device)
    return 0 if result else 1


def run_noisy_student(args: argparse.Namespace) -> int:
    """Train (or resume) the teacher and the rounds, print each one's test accuracy, write rounds.json."""
    from cnnlab.train.paradigms.noisy_student import noisy_student

    shortcuts = [f"{key}={value}" for key, value in (
        ("epochs", args.epochs), ("seed", args.seed), ("paradigm.noisy_student.threshold", args.threshold),
        ("paradigm.noisy_student.soft", "false" if args.hard else None),
        ("paradigm.noisy_student.balance", "false" if args.no_balance else None)) if value is not None]
    out = Path(args.out or f"runs/noisy-student-{args.data}".replace("@", "-").replace(":", "-"))
    table = noisy_student(args.data, args.teacher_model, args.student_model, out, args.labelled_fraction, args.rounds,
                          args.recipe, (*shortcuts, *args.overrides),
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
    from cnnlab.train.run import train_run

    source = Path(args.source).expanduser().resolve()
    if source.is_dir():
        model = args.model or RunInfo.read(source).model
        recipe = args.recipe or str(source / "recipe.yaml")
    elif args.model is None:
        raise CnnlabError(f"{args.source} is a weights file: name its architecture with --model (e.g. tv/resnet18)")
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
    result = train_run(model=model, data=args.data, out=args.out, data_dir=args.data_dir, recipe_name=recipe,
                       overrides=(*inherited, f"paradigm.finetune.source={json.dumps(str(source))}", *shortcuts,
                                  *args.overrides), device=args.device)
    return 0 if result else 1
