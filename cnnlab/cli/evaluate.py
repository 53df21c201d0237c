"""`cnnlab eval` and `cnnlab predict`: score a run on its test split, classify image files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.cli.common import positive_int


def register(commands: argparse._SubParsersAction) -> None:
    """Add the eval and predict commands."""
    evaluate = commands.add_parser("eval", help="test figures, per-class results and confusion matrix of a run or an ensemble")
    evaluate.add_argument("runs", nargs="+", metavar="run",
                          help="run directory written by cnnlab train; two or more score their ensemble (mean probability)")
    evaluate.add_argument("--out", default=None,
                          help="folder for an ensemble's eval.json and confusion.png (one run's go into the run directory)")
    evaluate.add_argument("--snapshots", action="store_true",
                          help="score the ensemble of the run's snapshots (paradigm.snapshot), not one checkpoint")
    evaluate.add_argument("--tta-table", action="store_true",
                          help="top-1 of 1 and N models with 1 crop, 10 crops and multi-scale (deck 004's table)")
    evaluate.add_argument("--crop", type=positive_int, default=None,
                          help="--tta-table: crop size (default: the runs' evaluation.crop)")
    evaluate.add_argument("--scales", default=None,
                          help="--tta-table: multi-scale sizes, e.g. 28,32,36 (default: crop, image size, and as much larger)")
    evaluate.add_argument("--data", default=None, help="data spec (default: the run's own)")
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--checkpoint", choices=["auto", "best", "last", "swa"], default=None,
                          help="weights to score (default: the recipe's evaluation.weights, auto = best if it validated)")
    evaluate.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    evaluate.add_argument("--format", choices=["text", "json"], default="text")
    evaluate.set_defaults(func=run_eval)

    pred = commands.add_parser("predict", help="top-k classes of image files with a run's model")
    pred.add_argument("run", help="run directory written by cnnlab train")
    pred.add_argument("images", nargs="+", help="image files")
    pred.add_argument("--top-k", type=positive_int, default=5)
    pred.add_argument("--format", choices=["text", "json"], default="text")
    pred.set_defaults(func=run_predict)


def _headline(result: dict) -> str:
    if "top1" in result:
        return f"top-1 {result['top1']:.2%}  top-5 {result['top5']:.2%}"
    return f"pixel accuracy {result['pixel_acc']:.2%}  mIoU {result['miou']:.3f}"


def run_eval(args: argparse.Namespace) -> int:
    """Score the run, write eval.json and confusion.png beside it, print the figures."""
    from cnnlab.errors import CnnlabError
    from cnnlab.runs.rundir import write_json
    from cnnlab.train.distributed import init_distributed
    from cnnlab.train.evaluation import evaluate_run, plot_confusion

    if args.split != "test":
        raise CnnlabError(f"split {args.split!r} is not available: this version evaluates the test split")
    _, device = init_distributed(args.device)
    if not args.tta_table and (args.crop is not None or args.scales is not None):
        raise CnnlabError("--crop and --scales are the table's: add --tta-table (a run's own views are its recipe's)")
    if args.tta_table and args.snapshots:
        raise CnnlabError("--tta-table compares runs, not snapshots: leave --snapshots out")
    if args.tta_table:
        return _tta_table(args, device)
    if len(args.runs) > 1 or args.snapshots:
        return _ensemble(args, device)
    if args.out is not None:
        raise CnnlabError("--out is for ensembles: one run's eval.json is written into its own run directory")
    result = evaluate_run(args.runs[0], args.data, args.data_dir, args.checkpoint, device)
    run = Path(args.runs[0])
    write_json(run / "eval.json", result)
    plot_confusion(result, run / "confusion.png")
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['data']} {args.split}: {_headline(result)}  loss {result['loss']:.4f}  ({result['images']} images, "
          f"{result['weights']['checkpoint']} weights{', EMA' if result['weights']['ema'] else ''}, tta {result['tta']})")
    _weakest(result)
    print(f"wrote {run / 'eval.json'} and {run / 'confusion.png'}")
    return 0


def _weakest(result: dict) -> None:
    per_class = result.get("per_class_accuracy") or {k: v for k, v in result["per_class_iou"].items() if v is not None}
    worst = sorted(per_class.items(), key=lambda item: item[1])[:3]
    print("weakest classes: " + ", ".join(f"{name} {acc:.1%}" for name, acc in worst))


def _ensemble(args: argparse.Namespace, device: object) -> int:
    """Score the runs' ensemble, print each member beside it, and write eval.json where --out says."""
    from cnnlab.errors import CnnlabError
    from cnnlab.runs.rundir import write_json
    from cnnlab.train.evaluation import plot_confusion
    from cnnlab.train.paradigms.ensemble import evaluate_ensemble

    if args.snapshots and args.checkpoint is not None:
        raise CnnlabError("--snapshots scores every snapshot: leave --checkpoint out")
    result = evaluate_ensemble(args.runs, args.data, args.data_dir, args.checkpoint, device, snapshots=args.snapshots)
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "eval.json", result)
        plot_confusion(result, out / "confusion.png")
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    for member in result["members"]:
        print(f"  {member['run']} ({member['checkpoint']}): top-1 {member['top1']:.2%}  top-5 {member['top5']:.2%}  loss {member['loss']:.4f}")
    print(f"{result['data']} {args.split}, ensemble of {len(result['members'])} models ({result['combine']}): "
          f"{_headline(result)}  loss {result['loss']:.4f}  ({result['images']} images; best member "
          f"{result['best_member_top1']:.2%})")
    _weakest(result)
    if args.out is not None:
        print(f"wrote {Path(args.out) / 'eval.json'} and {Path(args.out) / 'confusion.png'}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """Print the top-k classes of each image."""
    from cnnlab.runs.load import load_run
    from cnnlab.train.evaluation import predict

    results = predict(load_run(Path(args.run)), args.images, args.top_k)
    if args.format == "json":
        print(json.dumps(results, indent=2))
    else:
        for item in results:
            print(item["image"] + ": " + ", ".join(f"{t['class']} {t['probability']:.1%}" for t in item["top"]))
    return 0


def _tta_table(args: argparse.Namespace, device: object) -> int:
    """Print deck 004's table of crops, scales and model averaging over the runs."""
    from cnnlab.cli.common import parse_ints
    from cnnlab.runs.rundir import write_json
    from cnnlab.train.paradigms.tta_table import tta_table

    scales = parse_ints(args.scales.replace(",", "x"), "--scales", "28,32,36") if args.scales else ()
    result = tta_table(args.runs, args.data, args.data_dir, args.crop, scales, device)
    if args.out is not None:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        write_json(Path(args.out) / "tta_table.json", result)
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['data']} test, {result['images']} images; crops of {result['crop']} px, "
          f"multi-scale at {', '.join(map(str, result['scales']))} px")
    print(f"{'models':>6}  {'views':<12} {'top-1':>7}  (range over the single models)")
    for row in result["rows"]:
        spread = f"  ({row['min']:.2%} - {row['max']:.2%})" if "min" in row else ""
        print(f"{row['models']:>6}  {row['views']:<12} {row['top1']:>7.2%}{spread}")
    return 0
