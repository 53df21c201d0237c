"""`cnnlab arith conv|tconv|pool`: one layer's output size, padding, receptive field, parameters, MACs."""

from __future__ import annotations

import argparse
from typing import Any

from cnnlab.cli.common import emit
from cnnlab.cli.domains import Choice
from cnnlab.cli.numeric import Integer, Padding, Sizes
from cnnlab.cli.options import Spec, add, option


def register(commands: argparse._SubParsersAction) -> None:
    """Add the arith command."""
    arith = commands.add_parser("arith", help="output size, padding, receptive field, params and MACs of one layer")
    option(arith, Spec("op", Choice(("conv", "tconv", "pool")), "the layer: conv, tconv or pool", extra={"metavar": "OP"}))
    option(arith, Spec("--input", Sizes("32 or 32x32"), "spatial size: 32 or 32x32", required=True))
    option(arith, Spec("--kernel", Sizes("3 or 3x3"), "kernel size: 3 or 3x3", "3"))
    option(arith, Spec("--stride", Sizes("2 or 2x2"), "stride (default 1; pooling: the kernel)"))
    option(arith, Spec("--padding", Padding(), "integer, valid, same or full (conv)", "0"))
    option(arith, Spec("--dilation", Sizes("1 or 2x2"), "spacing of the kernel's taps", "1"))
    option(arith, Spec("--output-padding", Integer(0, 1024), "transposed conv only: extra rows and columns at the end", 0))
    option(arith, Spec("--ceil-mode", None, "pooling only: round the output size up"))
    option(arith, Spec("--in-channels", Integer(1, 1_000_000), "input channels", 1))
    option(arith, Spec("--out-channels", Integer(1, 1_000_000), "output channels", 1))
    option(arith, Spec("--groups", Integer(1, 1_000_000), "channel groups (in-channels for depth-wise)", 1))
    option(arith, Spec("--no-bias", None, "leave the bias out of the parameter count"))
    add(arith, "format")
    arith.set_defaults(func=run)


def _print(result: dict[str, Any]) -> None:
    def join(values: list) -> str:
        return "x".join(str(v) for v in values)

    print(f"output size      {join(result['output'])}  (input {join(result['input'])})")
    print(f"padding used     {' x '.join(f'{b}+{a}' for b, a in result['padding'])}  (before+after)")
    if "receptive_field" in result:
        print(f"receptive field  {join(result['receptive_field'])}  (this layer alone; jump {join(result['jump'])})")
    print(f"parameters       {result['params']:,}")
    print(f"MACs             {result['macs']:,} per image")


def run(args: argparse.Namespace) -> int:
    """Print one layer's arithmetic."""
    from cnnlab.arithmetic import layer_arithmetic

    stride = args.kernel if args.op == "pool" and args.stride is None else (args.stride or (1,))
    result = layer_arithmetic(
        args.op, args.input, args.kernel, stride, args.padding, args.dilation, output_padding=args.output_padding,
        ceil_mode=args.ceil_mode, in_channels=args.in_channels, out_channels=args.out_channels,
        groups=args.groups, bias=not args.no_bias,
    )
    if not emit(result, args.format):
        _print(result)
    return 0
