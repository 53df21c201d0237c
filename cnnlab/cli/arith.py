"""`cnnlab arith conv|tconv|pool`: one layer's output size, padding, receptive field, parameters, MACs."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cnnlab.cli.common import padding_value, parse_ints, positive_int


def register(commands: argparse._SubParsersAction) -> None:
    """Add the arith command."""
    arith = commands.add_parser("arith", help="output size, padding, receptive field, params and MACs of one layer")
    arith.add_argument("op", choices=["conv", "tconv", "pool"])
    arith.add_argument("--input", required=True, help="spatial size: 32 or 32x32")
    arith.add_argument("--kernel", default="3", help="kernel size: 3 or 3x3")
    arith.add_argument("--stride", default=None, help="stride (pooling defaults to the kernel)")
    arith.add_argument("--padding", default="0", help="integer, valid, same or full (conv)")
    arith.add_argument("--dilation", default="1")
    arith.add_argument("--output-padding", type=int, default=0, help="transposed conv only")
    arith.add_argument("--ceil-mode", action="store_true", help="pooling only")
    arith.add_argument("--in-channels", type=positive_int, default=1)
    arith.add_argument("--out-channels", type=positive_int, default=1)
    arith.add_argument("--groups", type=positive_int, default=1)
    arith.add_argument("--no-bias", action="store_true")
    arith.add_argument("--format", choices=["text", "json"], default="text")
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

    stride = args.kernel if args.op == "pool" and args.stride is None else (args.stride or "1")
    result = layer_arithmetic(
        args.op, parse_ints(args.input, "--input", "32 or 32x32"), parse_ints(args.kernel, "--kernel", "3 or 3x3"),
        parse_ints(stride, "--stride", "2 or 2x2"), padding_value(args.padding),
        parse_ints(args.dilation, "--dilation", "1 or 2x2"), output_padding=args.output_padding,
        ceil_mode=args.ceil_mode, in_channels=args.in_channels, out_channels=args.out_channels,
        groups=args.groups, bias=not args.no_bias,
    )
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        _print(result)
    return 0
