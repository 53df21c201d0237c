"""`cnnlab data export SPEC --out DIR`: a data set written as COCO folders, so other tools read the same data."""

from __future__ import annotations

import argparse

from cnnlab.cli.domains import Choice, Text
from cnnlab.cli.numeric import Integer
from cnnlab.cli.options import Spec, add, option


def register(commands: argparse._SubParsersAction) -> None:
    """Add the data command."""
    parser = commands.add_parser("data", help="export a detection data set (mnist-det, digits-det, coco:PATH) as COCO folders")
    option(parser, Spec("action", Choice(("export",)), "what to do: export writes OUT/train and OUT/test",
                        extra={"metavar": "ACTION"}))
    option(parser, Spec("spec", Text(), "data spec of box targets: mnist-det, digits-det or coco:PATH",
                        extra={"metavar": "SPEC"}))
    add(parser, "data_dir")
    add(parser, "seed", default=0, help="the held-out split of a COCO folder without train/ and test/")
    option(parser, Spec("--input-size", Integer(8, 4096), "letterbox every image to N x N, its boxes with it "
                        "(needed for a COCO folder of mixed sizes)", extra={"metavar": "N"}))
    add(parser, "out", help="folder to write train/ and test/ into, each images/ and instances.json")
    parser.set_defaults(func=run_data)


def run_data(args: argparse.Namespace) -> int:
    """Write the spec's train and test splits as COCO folders and print where."""
    from cnnlab.data.augment.targets import TargetKind, kind_of
    from cnnlab.data.coco import write_coco
    from cnnlab.data.sources import DataSplits, load
    from cnnlab.errors import CnnlabError
    from cnnlab.runs.outputs import Output

    if args.out is None:
        raise CnnlabError("give --out FOLDER to write the COCO folders into")
    splits = load(args.spec, args.data_dir, seed=args.seed, resize=args.input_size)
    if args.input_size is not None:  # generated sets are one size: letterbox them like a COCO folder's images
        from cnnlab.data.placement import place

        splits = DataSplits(*(place(part, args.input_size, 0, stream=False) for part in (splits.train, splits.test)))
    if kind_of(splits.train.labels) is not TargetKind.BOXES:
        raise CnnlabError(f"{args.spec} has no boxes: export writes detection data (mnist-det, digits-det, coco:PATH)")
    out = Output(args.out)
    out.check(["train", "test"])
    for name, part in (("train", splits.train), ("test", splits.test)):
        path = write_coco(out.write, name, part.images, part.labels, tuple(part.classes))
        boxes = int((part.labels[..., 0] >= 0).sum())
        print(f"wrote {path} and {len(part)} images ({boxes} boxes) in {path.parent / 'images'}")
    return 0
