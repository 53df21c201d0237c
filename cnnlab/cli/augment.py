"""`cnnlab augment DATA --policy RECIPE_OR_OPS`: a grid of the same images under a policy, several draws each.

Deck 004 warns that transforms must be "well calibrated": this is the picture to check them by.
`--list` prints the catalogue with every op's parameters and defaults.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from cnnlab.cli.common import positive_int


def register(commands: argparse._SubParsersAction) -> None:
    """Add the augment command."""
    parser = commands.add_parser("augment", help="picture a policy: the same images under several draws of it")
    parser.add_argument("data", nargs="?", help="data spec: mnist, cifar10, digits, folder:PATH, ...")
    parser.add_argument("--policy", help="a recipe (name or YAML path) whose augment list to draw, or ops: "
                        "flip,rotate:degrees=30,randaugment:n=1:magnitude=9 (or a YAML list)")
    parser.add_argument("--n", type=positive_int, default=16, help="images (rows)")
    parser.add_argument("--draws", type=positive_int, default=7, help="augmented copies of each image (columns)")
    parser.add_argument("--seed", type=int, default=0, help="which images, and which draws")
    parser.add_argument("--data-dir", default=None, help="where the data sets are (else CNNLAB_DATA, ~/.cache)")
    parser.add_argument("--out", default="augment.png", help="the PNG to write (a .json of the policy beside it)")
    parser.add_argument("--list", action="store_true", help="print every op with its parameters and defaults")
    parser.set_defaults(func=run_augment)


def catalogue() -> dict[str, dict[str, dict[str, object]]]:
    """Return {family: {op: {parameter: default}}} of every op a recipe can name."""
    from cnnlab.data.augment import FAMILIES
    from cnnlab.runs.config import to_plain

    return {family: {op.tag: {f.name: to_plain(f.default) for f in fields(op)} for op in ops}
            for family, ops in FAMILIES.items()}


def _ops(policy: str) -> tuple:
    """Return the typed ops a --policy names: a recipe's augment list, or ops written out."""
    from cnnlab.data.augment.preview import parse_ops
    from cnnlab.runs.recipe import RECIPE_DIR, load_recipe, recipe_from_dict

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

    if args.list:
        for family, ops in catalogue().items():
            print(f"{family}:")
            for tag, params in ops.items():
                print(f"  {tag:<16} " + ", ".join(f"{k}={v}" for k, v in params.items() if k not in ("eigenvalues", "eigenvectors")))
        return 0
    if not args.data or not args.policy:
        raise CnnlabError("give a data spec and --policy, e.g. cnnlab augment cifar10 --policy cifar-augment")
    ops = _ops(args.policy)  # a bad op or parameter fails here, before any data is read
    train = load(args.data, args.data_dir, seed=args.seed).train
    if getattr(train, "labels", None) is not None and train.labels.dim() != 1:
        raise CnnlabError(f"{args.data} is segmentation data: augment pictures classification data only")
    norm = Normalisation.of(train.sample_batches())
    index = sample_indices(len(train), args.n, args.seed)
    images, labels = next(iter(train.batches([index], torch.device("cpu"))))
    augmentation = Augmentation.for_data(ops, train, norm, len(train.classes))
    pictures = views(augmentation, images, labels, args.draws, args.seed)
    names = " -> ".join(op.tag for op in ops) or "no ops"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(augment_grid(pictures, [train.classes[int(label)] for label in labels],
                                 f"{args.data}: {names} ({args.draws} draws of each image)"))
    out.with_suffix(".json").write_text(json.dumps({"data": args.data, "seed": args.seed, "images": index.tolist(),
                                                    "augment": [to_plain(op) for op in ops]}, indent=1) + "\n")
    print(f"wrote {out}: {len(images)} images x {args.draws} draws of {names}")
    return 0
