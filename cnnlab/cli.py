"""The `cnnlab` command line: thin; every subcommand calls the library.

Bad input ends in one line on stderr naming the problem and the fix, with exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from cnnlab import __version__
from cnnlab.errors import CnnlabError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (problem and where to look), not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parse_ints(text: str, what: str, example: str = "3x224x224") -> tuple[int, ...]:
    """Return the integers of 'AxBxC' (or a single 'A'), or raise naming the expected form."""
    parts = text.lower().replace("*", "x").split("x")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise CnnlabError(f"{what} {text!r} is malformed: write integers joined by x, e.g. {example}") from None
    if any(v < 1 for v in values):
        raise CnnlabError(f"{what} {text!r} must hold positive sizes, e.g. {example}")
    return values


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def _positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be > 0")
    return value


def _padding_value(text: str) -> int | str:
    """Return an integer padding, or the policy name to be checked by the arithmetic."""
    try:
        return int(text)
    except ValueError:
        return text


def _per_dim(values: tuple[int, ...], dims: int, what: str) -> tuple[int, ...]:
    if len(values) == 1:
        return values * dims
    if len(values) != dims:
        raise CnnlabError(f"{what} has {len(values)} entries but the input has {dims} dimensions")
    return values


def _arith(args: argparse.Namespace) -> dict[str, Any]:
    """Return output size, padding, receptive field, parameters and MACs of one layer."""
    from cnnlab.nn import arithmetic as ar

    sizes = parse_ints(args.input, "--input", "32 or 32x32")
    dims = len(sizes)
    kernel = _per_dim(parse_ints(args.kernel, "--kernel", "3 or 3x3"), dims, "--kernel")
    stride_default = args.kernel if args.op == "pool" and args.stride is None else (args.stride or "1")
    stride = _per_dim(parse_ints(stride_default, "--stride", "2 or 2x2"), dims, "--stride")
    dilation = _per_dim(parse_ints(args.dilation, "--dilation", "1 or 2x2"), dims, "--dilation")
    padding_arg = _padding_value(args.padding)
    out, pads = [], []
    for i, k, s, d in zip(sizes, kernel, stride, dilation, strict=True):
        if args.op == "conv":
            pads.append(ar.resolve_padding(padding_arg, i, k, s, d))
            out.append(ar.conv_output_size(i, k, s, padding_arg, d))
        elif args.op == "tconv":
            if isinstance(padding_arg, int):
                p, op = padding_arg, args.output_padding
            elif ar.parse_padding_policy(padding_arg) is ar.PaddingPolicy.SAME:
                p, op = ar.transposed_same_padding(k, s, d)
            elif ar.parse_padding_policy(padding_arg) is ar.PaddingPolicy.VALID:
                p, op = 0, args.output_padding
            else:
                raise CnnlabError('a transposed conv takes --padding N, valid or same')
            pads.append((p, p))
            out.append(ar.conv_transpose_output_size(i, k, s, p, d, op))
        else:
            if not isinstance(padding_arg, int):
                raise CnnlabError(f"pooling takes an integer --padding, got {padding_arg!r}")
            p = padding_arg
            pads.append((p, p))
            out.append(ar.pool_output_size(i, k, s, p, d, ceil_mode=args.ceil_mode))

    c_in, c_out, groups = args.in_channels, args.out_channels, args.groups
    if args.op == "conv":
        params = ar.conv_params(c_in, c_out, kernel, groups, bias=not args.no_bias, dims=dims)
        macs = ar.conv_macs(c_in, c_out, kernel, out, groups)
    elif args.op == "tconv":
        params = ar.conv_params(c_out, c_in, kernel, groups, bias=False, dims=dims) + (0 if args.no_bias else c_out)
        macs = ar.conv_transpose_macs(c_in, c_out, kernel, sizes, groups)
    else:
        params, macs = 0, 0
    result: dict[str, Any] = {
        "op": args.op,
        "input": list(sizes),
        "output": out,
        "padding": [list(p) for p in pads],
        "params": params,
        "macs": macs,
    }
    if args.op != "tconv":  # a transposed conv up-samples: no whole-pixel field of its own
        result["receptive_field"] = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
        result["jump"] = list(stride)
    return result


def _print_arith(result: dict[str, Any]) -> None:
    def join(values: list) -> str:
        return "x".join(str(v) for v in values)

    print(f"output size      {join(result['output'])}  (input {join(result['input'])})")
    print(f"padding used     {' x '.join(f'{b}+{a}' for b, a in result['padding'])}  (before+after)")
    if "receptive_field" in result:
        print(f"receptive field  {join(result['receptive_field'])}  (this layer alone; jump {join(result['jump'])})")
    print(f"parameters       {result['params']:,}")
    print(f"MACs             {result['macs']:,} per image")


def _cmd_arith(args: argparse.Namespace) -> int:
    result = _arith(args)
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        _print_arith(result)
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from cnnlab.inspect.summary import summary

    result = summary(args.model, parse_ints(args.input, "--input"))
    if args.format == "json":
        print(result.to_json())
    elif args.format == "csv":
        sys.stdout.write(result.to_csv())
    else:
        from rich.console import Console

        Console(width=max(Console().width, 140)).print(result.to_table())
    return 0


def _cmd_rf(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from cnnlab.inspect.receptive import analytic_receptive_fields, effective_receptive_field
    from cnnlab.inspect.summary import build_model

    input_size = parse_ints(args.input, "--input")
    rows = analytic_receptive_fields(args.model, input_size)
    table = Table(title=f"receptive field of {args.model} at {args.input}")
    for header in ("layer", "type", "output", "RF", "jump", "start"):
        table.add_column(header)
    for row in rows:
        table.add_row(
            row.name, row.type, "x".join(map(str, row.output_shape)),
            "x".join(map(str, row.receptive_field or ())), "x".join(map(str, row.jump or ())),
            ", ".join(f"{s:g}" for s in row.start or ()),
        )
    console = Console(width=max(Console().width, 120))
    console.print(table)
    if args.erf:
        model = build_model(args.model).eval()  # our own copy: BatchNorm and dropout at inference
        erf = effective_receptive_field(model, input_size, layer=args.layer, samples=args.samples)
        console.print(
            f"effective receptive field (Luo et al. 2016, {args.samples} random inputs): "
            f"{erf.mass:.0%} of the gradient mass lies within radius {erf.radius:.1f} px of "
            f"({', '.join(f'{c:.1f}' for c in erf.centre)})"
        )
    return 0


def model_table(pattern: str | None = None) -> list[dict[str, Any]]:
    """Return one row per zoo model: name, family, paper, year, parameters, GMACs at its input."""
    from cnnlab.inspect.summary import summary
    from cnnlab.models import list_models, model_info

    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        result = summary(name, info.input_size)
        rows.append(
            {
                "name": name,
                "family": info.family,
                "paper": info.paper,
                "year": info.year,
                "params": result.total_params,
                "macs": result.total_macs,
                "gmacs": round(result.total_macs / 1e9, 6),  # LeNet-5 has 0.000416 G
                "input_size": list(info.input_size),
                "small_input": info.small_input,
                "classifier": info.classifier,
                "torchvision": info.torchvision,
            }
        )
    return rows


def _cmd_models(args: argparse.Namespace) -> int:
    rows = model_table(args.pattern)
    if not rows:
        raise CnnlabError(f"no model matches {args.pattern!r}: try a shell pattern such as 'resnet*'")
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cnnlab zoo: {len(rows)} models")
    for header in ("name", "family", "year", "params", "GMACs", "input"):
        table.add_column(header, justify="right" if header in ("params", "GMACs") else "left")
    for row in rows:
        table.add_row(row["name"], row["family"], str(row["year"]), f"{row['params']:,}",
                      f"{row['gmacs']:.3f}" if row["gmacs"] >= 0.01 else f"{row['gmacs']:.2g}", "x".join(map(str, row["input_size"])))
    Console(width=max(Console().width, 100)).print(table)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import os

    if args.devices > 1 and "LOCAL_RANK" not in os.environ:
        from cnnlab.train.distributed import launch

        return launch(args.argv, args.devices)  # torchrun runs this same command once per device
    from cnnlab.train.run import train_run

    shortcuts = [f"{key}={value}" for key, value in
                 (("epochs", args.epochs), ("batch_size", args.batch_size), ("optim.lr", args.lr), ("seed", args.seed))
                 if value is not None]
    model, overrides = args.model, list(args.overrides)
    if model is not None and "=" in model:  # `cnnlab train epochs=3`: no model, only overrides
        model, overrides = None, [model, *overrides]
    train_run(
        model=model,
        data=args.data,
        out=args.out,
        data_dir=args.data_dir,
        recipe_name=args.recipe,
        overrides=(*shortcuts, *overrides),
        resume=args.resume,
        device=args.device,
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnlab.train.evaluation import evaluate_run, plot_confusion

    run = Path(args.run)
    result = evaluate_run(run, args.data, args.data_dir, args.split, args.checkpoint)
    (run / "eval.json").write_text(json.dumps(result, indent=2))
    plot_confusion(result, run / "confusion.png")
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['data']} {args.split}: top-1 {result['top1']:.2%}  top-5 {result['top5']:.2%}  "
              f"loss {result['loss']:.4f}  ({result['images']} images)")
        worst = sorted(result["per_class_accuracy"].items(), key=lambda item: item[1])[:3]
        print("weakest classes: " + ", ".join(f"{name} {acc:.1%}" for name, acc in worst))
        print(f"wrote {run / 'eval.json'} and {run / 'confusion.png'}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnlab.train.evaluation import predict

    results = predict(Path(args.run), args.images, args.top_k)
    if args.format == "json":
        print(json.dumps(results, indent=2))
    else:
        for item in results:
            print(item["image"] + ": " + ", ".join(f"{t['class']} {t['probability']:.1%}" for t in item["top"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `cnnlab` command."""
    parser = _Parser(prog="cnnlab", description="Design, inspect, train and look inside CNNs.")
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    arith = commands.add_parser("arith", help="output size, padding, receptive field, params and MACs of one layer")
    arith.add_argument("op", choices=["conv", "tconv", "pool"])
    arith.add_argument("--input", required=True, help="spatial size: 32 or 32x32")
    arith.add_argument("--kernel", default="3", help="kernel size: 3 or 3x3")
    arith.add_argument("--stride", default=None, help="stride (pooling defaults to the kernel)")
    arith.add_argument("--padding", default="0", help="integer, valid, same or full (conv)")
    arith.add_argument("--dilation", default="1")
    arith.add_argument("--output-padding", type=int, default=0, help="transposed conv only")
    arith.add_argument("--ceil-mode", action="store_true", help="pooling only")
    arith.add_argument("--in-channels", type=_positive_int, default=1)
    arith.add_argument("--out-channels", type=_positive_int, default=1)
    arith.add_argument("--groups", type=_positive_int, default=1)
    arith.add_argument("--no-bias", action="store_true")
    arith.add_argument("--format", choices=["text", "json"], default="text")
    arith.set_defaults(func=_cmd_arith)

    models = commands.add_parser("models", help="list the zoo: family, year, parameters, GMACs")
    models.add_argument("pattern", nargs="?", default=None, help="shell pattern, e.g. 'resnet*'")
    models.add_argument("--format", choices=["table", "json"], default="table")
    models.set_defaults(func=_cmd_models)

    summ = commands.add_parser("summary", help="per-layer table: shapes, params, MACs, memory, receptive field")
    summ.add_argument("model", help="zoo name, tv/<name>, timm/<name> or module:factory")
    summ.add_argument("--input", required=True, help="C x H x W, e.g. 3x224x224")
    summ.add_argument("--format", choices=["table", "json", "csv"], default="table")
    summ.set_defaults(func=_cmd_summary)

    rf = commands.add_parser("rf", help="analytic (and with --erf effective) receptive field per layer")
    rf.add_argument("model", help="zoo name, tv/<name>, timm/<name> or module:factory")
    rf.add_argument("--input", required=True, help="C x H x W, e.g. 3x224x224")
    rf.add_argument("--erf", action="store_true", help="also measure the effective receptive field")
    rf.add_argument("--layer", default=None, help="layer whose centre unit the ERF follows")
    rf.add_argument("--samples", type=_positive_int, default=8, help="random inputs averaged for the ERF")
    rf.set_defaults(func=_cmd_rf)

    train = commands.add_parser("train", help="train a zoo model (default: the demo's small CNN) on a data spec")
    train.add_argument("model", nargs="?", default=None, help="zoo name, tv/<name> or timm/<name> (default small_cnn)")
    train.add_argument("--data", default="digits", help="digits, mnist, fashion-mnist, cifar10, cifar100 or folder:PATH")
    train.add_argument("--data-dir", default=None, help="first folder to look for data in (then $CNNLAB_DATA, ~/.cache/cnnlab)")
    train.add_argument("--out", default=None, help="run directory (default runs/DATA-MODEL, never overwritten)")
    train.add_argument("--recipe", default=None, help="recipes/<name>.yaml or a YAML path (default: digits for digits, else default)")
    train.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    train.add_argument("--devices", type=_positive_int, default=1,
                       help="data-parallel processes (GPUs, or CPU processes with gloo) launched through torchrun")
    train.add_argument("--resume", default=None, help="run directory to continue from its last checkpoint")
    train.add_argument("--epochs", type=_positive_int, default=None, help="shortcut for epochs=N")
    train.add_argument("--batch-size", type=_positive_int, default=None, help="shortcut for batch_size=N")
    train.add_argument("--lr", type=_positive_float, default=None, help="shortcut for optim.lr=X")
    train.add_argument("--seed", type=int, default=None, help="shortcut for seed=N")
    train.add_argument("overrides", nargs="*", help="recipe overrides key=value, e.g. optim.lr=0.01 augment.flip=true")
    train.set_defaults(func=_cmd_train)

    evaluate = commands.add_parser("eval", help="top-1, top-5, per-class accuracy and confusion matrix of a run")
    evaluate.add_argument("run", help="run directory written by cnnlab train")
    evaluate.add_argument("--data", default=None, help="data spec (default: the run's own)")
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--checkpoint", choices=["best", "last"], default="best")
    evaluate.add_argument("--format", choices=["text", "json"], default="text")
    evaluate.set_defaults(func=_cmd_eval)

    pred = commands.add_parser("predict", help="top-k classes of image files with a run's model")
    pred.add_argument("run", help="run directory written by cnnlab train")
    pred.add_argument("images", nargs="+", help="image files")
    pred.add_argument("--top-k", type=_positive_int, default=5)
    pred.add_argument("--format", choices=["text", "json"], default="text")
    pred.set_defaults(func=_cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    # argparse hands `key=value` words that follow an option to nobody; they are recipe overrides.
    if extra and getattr(args, "command", None) == "train" and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except CnnlabError as error:
        print(f"cnnlab {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cnnlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (`| head`) left early: not an error of ours; silence the flush at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
