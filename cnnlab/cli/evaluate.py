"""`cnnlab eval` and `cnnlab predict`: score a run on its test split, classify image files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.cli.common import positive_int


def register(commands: argparse._SubParsersAction) -> None:
    """Add the eval and predict commands."""
    evaluate = commands.add_parser("eval", help="test figures, per-class results and confusion matrix of a run")
    evaluate.add_argument("run", help="run directory written by cnnlab train")
    evaluate.add_argument("--data", default=None, help="data spec (default: the run's own)")
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--checkpoint", choices=["auto", "best", "last"], default=None,
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
    result = evaluate_run(args.run, args.data, args.data_dir, args.checkpoint, device)
    run = Path(args.run)
    write_json(run / "eval.json", result)
    plot_confusion(result, run / "confusion.png")
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['data']} {args.split}: {_headline(result)}  loss {result['loss']:.4f}  ({result['images']} images, "
          f"{result['weights']['checkpoint']} weights{', EMA' if result['weights']['ema'] else ''}, tta {result['tta']})")
    per_class = result.get("per_class_accuracy") or {k: v for k, v in result["per_class_iou"].items() if v is not None}
    worst = sorted(per_class.items(), key=lambda item: item[1])[:3]
    print("weakest classes: " + ", ".join(f"{name} {acc:.1%}" for name, acc in worst))
    print(f"wrote {run / 'eval.json'} and {run / 'confusion.png'}")
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
