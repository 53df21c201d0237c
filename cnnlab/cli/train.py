"""`cnnlab train`: train a model on a data spec into a run directory (or resume one)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cnnlab.cli.domains import Text
from cnnlab.cli.numeric import Integer, Number
from cnnlab.cli.options import Spec, add, option
from cnnlab.cli.reconcile import combine


def register(commands: argparse._SubParsersAction) -> None:
    """Add the train command."""
    train = commands.add_parser("train", help="train a zoo model (default: the demo's small CNN) on a data spec")
    option(train, Spec("model", Text(), "zoo name, tv/<name> or timm/<name> (default small_cnn)", nargs="?",
                       extra={"metavar": "MODEL"}))
    add(train, "data", default="digits")
    add(train, "data_dir")
    add(train, "out_run", help="run directory (default runs/DATA-MODEL, never overwritten)")
    add(train, "recipe", help="recipes/<name>.yaml or a YAML path (default: digits for digits, segmentation for *-seg, else default)")
    add(train, "device")
    add(train, "devices")
    option(train, Spec("--resume", Text(), "run directory to continue from its last checkpoint", extra={"metavar": "RUN"}))
    add(train, "epochs")
    option(train, Spec("--batch-size", Integer(1, 1_000_000), "shortcut for batch_size=N"))
    option(train, Spec("--lr", Number(0, open_low=True), "shortcut for optim.lr=X"))
    add(train, "seed", help="shortcut for seed=N (0 is a seed)")
    add(train, "overrides")
    train.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train (once per device under torchrun with --devices N)."""
    if args.devices > 1 and "LOCAL_RANK" not in os.environ:
        from cnnlab.train.distributed import launch

        return launch(args.argv, args.devices, args.device)  # torchrun runs this same command once per device
    from cnnlab.errors import CnnlabError
    from cnnlab.runs.outputs import cleaned, refuse_run_dir
    from cnnlab.train.run import train_run

    if args.out is not None:
        refuse_run_dir(Path(args.out).parent)  # a run inside another run's folder (its checkpoints/ too)
    if args.resume is not None and args.out is not None:
        raise CnnlabError(f"--resume continues {args.resume} in place: leave --out out (or train afresh into --out)")

    shortcuts = [f"{key}={value}" for key, value in
                 (("epochs", args.epochs), ("batch_size", args.batch_size), ("optim.lr", args.lr), ("seed", args.seed))
                 if value is not None]
    model, overrides = args.model, list(args.overrides)  # `settle` moved a model word like epochs=3 to the overrides
    with cleaned(args.out):
        result = train_run(model=model, data=args.data, out=args.out, data_dir=args.data_dir, recipe_name=args.recipe,
                           overrides=combine(shortcuts, overrides), resume=args.resume, device=args.device)
    if "run" in result:  # rank 0 (the only rank that scores) of a finished run
        from cnnlab.runs.recipe import load_recipe

        # The run's recipe with this call's overrides: report=true given to --resume counts too.
        if load_recipe(f"{result['run']}/recipe.yaml", (*shortcuts, *overrides)).report:
            _report(result["run"], args)
    return 0


def _report(run: str, args: argparse.Namespace) -> None:
    """Write the finished run's report.html (here, not in train: train sits below report and never imports it)."""
    from cnnlab.cli.report import DEFAULT_EXPLAIN, explain_methods, write_run_report
    from cnnlab.errors import CnnlabError

    try:
        print(f"wrote {write_run_report(run, explain_methods(DEFAULT_EXPLAIN), data_dir=args.data_dir, device=args.device)}")
    except CnnlabError as error:
        raise CnnlabError(f"training finished ({run}), but its report was not written: {error}") from None
