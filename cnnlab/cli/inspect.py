"""`cnnlab models`, `cnnlab summary`, `cnnlab rf`: the zoo, per-layer tables, receptive fields."""

from __future__ import annotations

import argparse
import sys

from cnnlab.cli.common import emit
from cnnlab.cli.domains import Text
from cnnlab.cli.numeric import Integer, Sizes
from cnnlab.cli.options import Spec, add, option
from cnnlab.errors import CnnlabError


def register(commands: argparse._SubParsersAction) -> None:
    """Add the models, summary and rf commands."""
    models = commands.add_parser("models", help="list the zoo: family, year, parameters, GMACs")
    option(models, Spec("pattern", Text(), "shell pattern, e.g. 'resnet*'", nargs="?", extra={"metavar": "PATTERN"}))
    add(models, "format")
    models.set_defaults(func=run_models)

    summ = commands.add_parser(
        "summary", help="per-layer table: shapes, params, MACs, memory, receptive field",
        description=(
            "Per-layer table, counted on the meta device (no weights allocated). MACs equal "
            "FlopCounterMode / 2. Activation memory: the input plus every new leaf output; "
            "'func. elems' are new tensors of functional ops (residual adds, concatenations, "
            "gates), which the training-memory estimate adds. torchinfo's 'forward/backward pass "
            "size' is 2 x 4 bytes x the outputs of the layers that own parameters "
            "(torchinfo_pass_bytes in the JSON). RF: the receptive field per axis; 'g' marks "
            "global pooling and the layers after it, which show the field of the map before it."
        ),
    )
    option(summ, Spec("model", Text(), "zoo name, tv/<name>, timm/<name> or module:factory", extra={"metavar": "MODEL"}))
    option(summ, Spec("--input", Sizes(parts=(3,)), "C x H x W, e.g. 3x224x224", required=True))
    add(summ, "format")
    summ.set_defaults(func=run_summary)

    rf = commands.add_parser("rf", help="analytic (and with --erf effective) receptive field per layer")
    option(rf, Spec("model", Text(), "zoo name, tv/<name>, timm/<name> or module:factory", extra={"metavar": "MODEL"}))
    option(rf, Spec("--input", Sizes(parts=(3,)), "C x H x W, e.g. 3x224x224", required=True))
    option(rf, Spec("--erf", None, "also measure the effective receptive field"))
    add(rf, "layer", help="layer whose centre unit the ERF follows (default: the last)")
    option(rf, Spec("--samples", Integer(1, 10_000), "random inputs averaged for the ERF", 8))
    rf.set_defaults(func=run_rf)


def run_models(args: argparse.Namespace) -> int:
    """Print the zoo table."""
    from cnnlab.inspect.zoo import model_table

    rows = model_table(args.pattern)
    if not rows:
        raise CnnlabError(f"no model matches {args.pattern!r}: try a shell pattern such as 'resnet*'")
    if emit(rows, args.format):
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


def run_summary(args: argparse.Namespace) -> int:
    """Print a model's per-layer summary."""
    from cnnlab.inspect.summary import summary

    result = summary(args.model, args.input)
    if args.format == "json":
        print(result.to_json())
    elif args.format == "csv":
        sys.stdout.write(result.to_csv())
    else:
        from rich.console import Console

        Console(width=max(Console().width, 140)).print(result.to_table())
    return 0


def run_rf(args: argparse.Namespace) -> int:
    """Print the receptive field per layer (and the effective one of a layer)."""
    from rich.console import Console
    from rich.table import Table

    from cnnlab.inspect.receptive import analytic_receptive_fields, effective_receptive_field
    from cnnlab.inspect.summary import build_model

    input_size = args.input
    if args.erf:
        from cnnlab.cli.domains import Fail, check_allocation

        try:  # the ERF runs the model forward and backward at this size, `samples` times
            check_allocation(input_size[1] * input_size[2] * 1024, f"--input {'x'.join(map(str, input_size))} with --erf",
                             "choose a smaller --input")
        except Fail as error:
            raise CnnlabError(str(error)) from None
    rows = analytic_receptive_fields(args.model, input_size)
    table = Table(title=f"receptive field of {args.model} at {args.input}")
    for header in ("layer", "type", "output", "RF", "jump", "start"):
        table.add_column(header)
    for row in rows:
        table.add_row(
            row.name, row.type, "x".join(map(str, row.output_shape)),
            "x".join(map(str, row.receptive_field or ())) + (" global" if row.receptive_field_global else ""),
            "x".join(map(str, row.jump or ())), ", ".join(f"{s:g}" for s in row.start or ()),
        )
    table.caption = ("global: global pooling or after it (the field of the map before the pooling); "
                     "gates (SE) do not widen a field")
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
