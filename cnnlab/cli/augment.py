"""`cnnlab augment DATA --policy RECIPE_OR_OPS`: a grid of the same images under a policy, several draws each.

Deck 004 warns that transforms must be "well calibrated": this is the picture to check them by.
`--list` prints the catalogue with every op's parameters and defaults.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from cnnlab.cli.domains import Text
from cnnlab.cli.numeric import Integer
from cnnlab.cli.options import Spec, add, option
from cnnlab.cli.reconcile import notice, out_folder


def register(commands: argparse._SubParsersAction) -> None:
    """Add the augment command."""
    parser = commands.add_parser("augment", help="picture a policy: the same images under several draws of it")
    add(parser, "data", help="data spec: mnist, cifar10, digits, folder:PATH, ...")
    option(parser, Spec("data_positional", Text(), argparse.SUPPRESS, nargs="?", extra={"metavar": "DATA"}))
    option(parser, Spec("--policy", Text(), "a recipe (name or YAML path) whose augment list to draw, or ops: "
                        "flip,rotate:degrees=30,randaugment:n=1:magnitude=9 (or a YAML list)", extra={"metavar": "POLICY"}))
    option(parser, Spec("--n", Integer(1, 256), "images (rows)", 16))
    option(parser, Spec("--draws", Integer(1, 64), "augmented copies of each image (columns)", 7))
    add(parser, "seed", default=0, help="which images, and which draws (0 is a seed)")
    add(parser, "data_dir")
    add(parser, "out", default=".", help="folder to write augment.png and augment.json (the policy) into")
    option(parser, Spec("--list", None, "print every op with its parameters and defaults"))
    parser.set_defaults(func=run_augment)


def catalogue() -> dict[str, dict[str, dict[str, object]]]:
    """Return {family: {op: {parameter: default}}} of every op a recipe can name."""
    from cnnlab.data.augment import FAMILIES
    from cnnlab.runs.config import to_plain

    return {family: {op.tag: {f.name: to_plain(f.default) for f in fields(op)} for op in ops}
            for family, ops in FAMILIES.items()}


def _ops(policy: str) -> tuple:
    """Return the typed ops a --policy names: a recipe's augment list, or ops written out."""
    from cnnlab.runs.recipe import RECIPE_DIR, load_recipe, parse_ops, recipe_from_dict

    path = Path(policy)
    if path.suffix in (".yaml", ".yml") or (not path.suffix and (RECIPE_DIR / f"{policy}.yaml").is_file()):
        return load_recipe(policy).augment
    return recipe_from_dict({"augment": parse_ops(policy)}).augment


def run_augment(args: argparse.Namespace) -> int:
    """Draw the grid and write the PNG and the policy's JSON; print where."""
    import torch

    from cnnlab.data.augment import Augmentation
    from cnnlab.data.augment.preview import views
    from cnnlab.data.loader import sample_indices
    from cnnlab.data.normalise import Normalisation
    from cnnlab.data.sources import load
    from cnnlab.errors import CnnlabError
    from cnnlab.report.plots import augment_grid
    from cnnlab.runs.config import to_plain
    from cnnlab.runs.outputs import Output

    if args.list:
        for family, ops in catalogue().items():
            print(f"{family}:")
            for tag, params in ops.items():
                print(f"  {tag:<16} " + ", ".join(f"{k}={v}" for k, v in params.items() if k not in ("eigenvalues", "eigenvectors")))
        return 0
    if args.data_positional is not None:
        notice("augment", f"augment {args.data_positional} is now augment --data {args.data_positional}")
        if args.data is not None:
            raise CnnlabError(f"augment {args.data_positional} and --data {args.data} name two data sets: give only --data")
        args.data = args.data_positional
    if not args.data or not args.policy:
        raise CnnlabError("give --data and --policy, e.g. cnnlab augment --data cifar10 --policy cifar-augment")
    folder, legacy = out_folder(args, ".png")
    out = Output(folder)
    ops = _ops(args.policy)  # a bad op or parameter fails here, before any data is read
    train = load(args.data, args.data_dir, seed=args.seed).train
    from cnnlab.data.augment import refuse_uncarried
    from cnnlab.data.augment.targets import TargetKind, kind_of

    targets = getattr(train, "labels", None)
    kind = TargetKind.LABELS if targets is None else kind_of(targets)
    if kind is not TargetKind.LABELS:
        refuse_uncarried(ops, kind.value)  # as training would: an op that cannot move the targets is one line here too
    norm = Normalisation.of(train.sample_batches())
    index = sample_indices(len(train), args.n, args.seed)
    images, labels = next(iter(train.batches([index], torch.device("cpu"))))
    augmentation = Augmentation.for_data(ops, train, norm, len(train.classes))
    pictures = views(augmentation, images, labels, args.draws, args.seed)
    names = " -> ".join(op.tag for op in ops) or "no ops"
    rows = ([f"{int((label[:, 0] >= 0).sum())} boxes" for label in labels] if kind is TargetKind.BOXES
            else ["canvas"] * len(labels) if kind is TargetKind.MASKS else [train.classes[int(label)] for label in labels])
    picture = out.bytes(legacy or "augment.png", augment_grid(pictures, rows,
                                                              f"{args.data}: {names} ({args.draws} draws of each image)"))
    out.json("augment.json", {"data": args.data, "seed": args.seed, "images": index.tolist(), "augment": [to_plain(op) for op in ops]})
    print(f"wrote {picture}: {len(images)} images x {args.draws} draws of {names}")
    return 0
