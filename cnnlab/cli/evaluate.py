"""`cnnlab eval` and `cnnlab predict`: score a run on its test split, classify image files."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli.common import emit
from cnnlab.cli.domains import Choice, Text
from cnnlab.cli.numeric import ImageSides, Integer, Number
from cnnlab.cli.options import Spec, add, option


def register(commands: argparse._SubParsersAction) -> None:
    """Add the eval and predict commands."""
    evaluate = commands.add_parser("eval", help="test figures, per-class results and confusion matrix of a run or an ensemble")
    option(evaluate, Spec("runs", Text(), "run directory written by cnnlab train; two or more score their ensemble (mean probability)",
                          nargs="+", extra={"metavar": "RUN"}))
    add(evaluate, "out", help="folder for an ensemble's (or the table's) eval.json and confusion.png (one run's go into its run "
                              "directory)")
    option(evaluate, Spec("--snapshots", None, "score the ensemble of the run's snapshots (paradigm.snapshot), not one checkpoint"))
    option(evaluate, Spec("--tta-table", None, "top-1 of 1 and N models with 1 crop, 10 crops and multi-scale (deck 004's table)"))
    option(evaluate, Spec("--crop", ImageSides(low=1, images=256), "--tta-table: crop size (default: the runs' evaluation.crop)"))
    option(evaluate, Spec("--scales", ImageSides(low=1, many=True, images=256),
                          "--tta-table: multi-scale sizes, e.g. 28,32,36 (default: crop, image size, and as much larger)",
                          extra={"metavar": "A,B"}))
    add(evaluate, "data", help="data spec (default: the run's own)")
    add(evaluate, "data_dir")
    option(evaluate, Spec("--split", Choice(("test",)), "the split to score (this version scores the held-out test split)", "test"))
    add(evaluate, "checkpoint")
    add(evaluate, "device")
    add(evaluate, "format")
    evaluate.set_defaults(func=run_eval)

    pred = commands.add_parser("predict", help="top-k classes of image files with a run's model, or a detector's boxes drawn")
    option(pred, Spec("run", Text(), "run directory written by cnnlab train", extra={"metavar": "RUN"}))
    option(pred, Spec("images", Text(), "image files", nargs="+", extra={"metavar": "FILE"}))
    option(pred, Spec("--top-k", Integer(1, 100_000), "classes to show per image", 5))
    option(pred, Spec("--min-score", Number(0.05, 1.0), "detection runs: the lowest score of a box drawn and listed "
                      "(scoring keeps boxes from 0.05)", 0.3))
    add(pred, "out", help="detection runs: folder for each image with its boxes drawn (NAME.png) and predictions.json "
                          "(default: RUN/predictions)")
    add(pred, "checkpoint")
    add(pred, "device")
    add(pred, "format")
    pred.set_defaults(func=run_predict)


def run_eval(args: argparse.Namespace) -> int:
    """Score the run, write eval.json and confusion.png beside it, print the figures."""
    from cnnlab.errors import CnnlabError
    from cnnlab.runs.outputs import Output
    from cnnlab.train.distributed import init_distributed
    from cnnlab.train.evaluation import evaluate_run, result_picture
    from cnnlab.train.tasks import describe

    _, device = init_distributed(args.device)
    if args.tta_table and args.snapshots:
        raise CnnlabError("--tta-table compares runs, not snapshots: leave --snapshots out")
    if args.tta_table:
        return _tta_table(args, device)
    if len(args.runs) > 1 or args.snapshots:
        return _ensemble(args, device)
    if args.out is not None:
        raise CnnlabError("--out is for ensembles: one run's eval.json is written into its own run directory")
    result = evaluate_run(args.runs[0], args.data, args.data_dir, args.checkpoint, device)
    picture, draw = result_picture(result)
    run = Output(args.runs[0], own=frozenset({"eval.json", picture}), own_run=args.runs[0])  # beside its summary
    run.json("eval.json", result)
    run.write(picture, draw)
    if emit(result, args.format):
        return 0
    print(f"{result['data']} {args.split}: {describe(result)}  loss {result['loss']:.4f}  ({result['images']} images, "
          f"{result['weights']['checkpoint']} weights{', EMA' if result['weights']['ema'] else ''}, tta {result['tta']})")
    _weakest(result)
    print(f"wrote {run.folder / 'eval.json'} and {run.folder / picture}")
    return 0


def _weakest(result: dict) -> None:
    if "per_class_ap" in result:
        print("per-class AP: " + ", ".join(f"{name} {ap:.3f}" for name, ap in result["per_class_ap"].items() if ap >= 0))
        stats = result["stats"]
        print("AP small/medium/large: " + " / ".join(f"{stats[k]:.3f}" if stats[k] >= 0 else "-"
                                                     for k in ("AP_small", "AP_medium", "AP_large"))
              + f"  AR100 {stats['AR100']:.3f}")
        return
    per_class = result.get("per_class_accuracy") or {k: v for k, v in result["per_class_iou"].items() if v is not None}
    worst = sorted(per_class.items(), key=lambda item: item[1])[:3]
    print("weakest classes: " + ", ".join(f"{name} {acc:.1%}" for name, acc in worst))


def _ensemble(args: argparse.Namespace, device: object) -> int:
    """Score the runs' ensemble, print each member beside it, and write eval.json where --out says."""
    from cnnlab.errors import CnnlabError
    from cnnlab.runs.outputs import Output
    from cnnlab.train.evaluation import plot_confusion
    from cnnlab.train.tasks import describe
    from cnnlab.workflows.ensemble import evaluate_ensemble

    if args.snapshots and args.checkpoint is not None:
        raise CnnlabError("--snapshots scores every snapshot: leave --checkpoint out")
    out = Output(args.out) if args.out is not None else None
    if out is not None:
        out.check(["eval.json", "confusion.png"])
    result = evaluate_ensemble(args.runs, args.data, args.data_dir, args.checkpoint, device, snapshots=args.snapshots)
    if out is not None:
        out.json("eval.json", result)
        out.write("confusion.png", lambda path: plot_confusion(result, path))
    if emit(result, args.format):
        return 0
    for member in result["members"]:
        print(f"  {member['run']} ({member['checkpoint']}): top-1 {member['top1']:.2%}  top-5 {member['top5']:.2%}  loss {member['loss']:.4f}")
    print(f"{result['data']} {args.split}, ensemble of {len(result['members'])} models ({result['combine']}): "
          f"{describe(result)}  loss {result['loss']:.4f}  ({result['images']} images; best member "
          f"{result['best_member_top1']:.2%})")
    _weakest(result)
    if args.out is not None:
        print(f"wrote {Path(args.out) / 'eval.json'} and {Path(args.out) / 'confusion.png'}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """Print the top-k classes of each image, or draw a detector's boxes on each and write them with a JSON."""
    from cnnlab.errors import CnnlabError
    from cnnlab.runs.info import TaskName
    from cnnlab.runs.load import load_run
    from cnnlab.train.distributed import local_device
    from cnnlab.train.evaluation import predict

    run = load_run(Path(args.run), args.checkpoint, local_device(args.device))
    if run.info.task is TaskName.DETECTION:
        return _predict_boxes(args, run)
    if args.out is not None:
        raise CnnlabError("--out is for detection runs, whose boxes are drawn: a classifier's predictions are printed")
    results = predict(run, args.images, args.top_k)
    rows = [{"image": item["image"], "rank": rank + 1, **top} for item in results for rank, top in enumerate(item["top"])]
    if not emit(results if args.format == "json" else rows, args.format):
        for item in results:
            print(item["image"] + ": " + ", ".join(f"{t['class']} {t['probability']:.1%}" for t in item["top"]))
    return 0


def _predict_boxes(args: argparse.Namespace, run: object) -> int:
    """Write each image with the run's detections drawn, and predictions.json, into --out; print the boxes."""
    import torch

    from cnnlab.data.boxes import draw_detections
    from cnnlab.data.images import write_png
    from cnnlab.runs.outputs import Output
    from cnnlab.train.evaluation import predict_boxes

    results = predict_boxes(run, args.images, args.min_score)
    out = Output(args.out if args.out is not None else str(Path(args.run) / "predictions"))
    used: set[str] = set()
    for item in results:
        stem, count = Path(item["image"]).stem, 1
        name = f"{stem}.png"
        while name in used:  # two files of one name (or a-2.png beside a.png twice) all stay
            count += 1
            name = f"{stem}-{count}.png"
        used.add(name)
        found = item.pop("detections")
        drawn = draw_detections(item.pop("pixels"), torch.tensor([d["box"] for d in found]).reshape(-1, 4),
                                [f"{d['class']} {d['score']:.2f}" for d in found],
                                torch.tensor([d["class_index"] for d in found], dtype=torch.long))
        out.write(name, lambda path, drawn=drawn: write_png(drawn, path))
        item.update(picture=name, detections=found)
    out.json("predictions.json", {"run": str(args.run), "min_score": args.min_score, "images": results})
    if emit(results, args.format):
        return 0
    for item in results:
        boxes = ", ".join(f"{d['class']} {d['score']:.2f} at ({', '.join(f'{v:.0f}' for v in d['box'])})"
                          for d in item["detections"])
        print(f"{item['image']}: {boxes or 'no box'}")
    print(f"wrote {out.folder / 'predictions.json'} and {len(results)} pictures")
    return 0


def _tta_table(args: argparse.Namespace, device: object) -> int:
    """Print deck 004's table of crops, scales and model averaging over the runs."""
    from cnnlab.runs.outputs import Output
    from cnnlab.workflows.tta_table import tta_table

    out = Output(args.out) if args.out is not None else None
    result = tta_table(args.runs, args.data, args.data_dir, args.crop, args.scales or (), device)
    if out is not None:
        out.json("tta_table.json", result)
    if emit(result, args.format):
        return 0
    print(f"{result['data']} test, {result['images']} images; crops of {result['crop']} px, "
          f"multi-scale at {', '.join(map(str, result['scales']))} px")
    print(f"{'models':>6}  {'views':<12} {'top-1':>7}  (range over the single models)")
    for row in result["rows"]:
        spread = f"  ({row['min']:.2%} - {row['max']:.2%})" if "min" in row else ""
        print(f"{row['models']:>6}  {row['views']:<12} {row['top1']:>7.2%}{spread}")
    return 0
