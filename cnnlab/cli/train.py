"""`cnnlab train`: train a model on a data spec into a run directory (or resume one)."""

from __future__ import annotations

import argparse
import os

from cnnlab.cli.common import positive_float, positive_int


def register(commands: argparse._SubParsersAction) -> None:
    """Add the train command."""
    train = commands.add_parser("train", help="train a zoo model (default: the demo's small CNN) on a data spec")
    train.add_argument("model", nargs="?", default=None, help="zoo name, tv/<name> or timm/<name> (default small_cnn)")
    train.add_argument("--data", default="digits",
                       help="digits, mnist, fashion-mnist, cifar10, cifar100, folder:PATH; mnist-seg, digits-seg")
    train.add_argument("--data-dir", default=None, help="first folder to look for data in (then $CNNLAB_DATA, ~/.cache/cnnlab)")
    train.add_argument("--out", default=None, help="run directory (default runs/DATA-MODEL, never overwritten)")
    train.add_argument("--recipe", default=None,
                       help="recipes/<name>.yaml or a YAML path (default: digits for digits, segmentation for *-seg, else default)")
    train.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    train.add_argument("--devices", type=positive_int, default=1,
                       help="data-parallel processes (GPUs, or CPU processes with gloo) launched through torchrun")
    train.add_argument("--resume", default=None, help="run directory to continue from its last checkpoint")
    train.add_argument("--epochs", type=positive_int, default=None, help="shortcut for epochs=N")
    train.add_argument("--batch-size", type=positive_int, default=None, help="shortcut for batch_size=N")
    train.add_argument("--lr", type=positive_float, default=None, help="shortcut for optim.lr=X")
    train.add_argument("--seed", type=int, default=None, help="shortcut for seed=N")
    train.add_argument("overrides", nargs="*", help="recipe overrides key=value, e.g. optim.lr=0.01 augment.flip=true")
    train.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train (once per device under torchrun with --devices N)."""
    if args.devices > 1 and "LOCAL_RANK" not in os.environ:
        from cnnlab.train.distributed import launch

        return launch(args.argv, args.devices, args.device)  # torchrun runs this same command once per device
    from cnnlab.train.run import train_run

    shortcuts = [f"{key}={value}" for key, value in
                 (("epochs", args.epochs), ("batch_size", args.batch_size), ("optim.lr", args.lr), ("seed", args.seed))
                 if value is not None]
    model, overrides = args.model, list(args.overrides)
    if model is not None and "=" in model:  # `cnnlab train epochs=3`: no model, only overrides
        model, overrides = None, [model, *overrides]
    result = train_run(model=model, data=args.data, out=args.out, data_dir=args.data_dir, recipe_name=args.recipe,
                       overrides=(*shortcuts, *overrides), resume=args.resume, device=args.device)
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
