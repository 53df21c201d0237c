"""`cnnlab attack`: adversarial examples of a run's test images, their perturbation, and accuracy against eps."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.cli.common import positive_int


def parse_eps(text: str) -> float:
    """Return an eps given as a number or a fraction such as 8/255."""
    from cnnlab.errors import CnnlabError

    try:
        if "/" in text:
            top, bottom = text.split("/", 1)
            value = float(top) / float(bottom)
        else:
            value = float(text)
    except (ValueError, ZeroDivisionError):
        raise CnnlabError(f"eps {text!r} is not a number: write e.g. 0.03 or 8/255") from None
    if value < 0:
        raise CnnlabError(f"eps must be >= 0, got {text}")
    return value


def register(commands: argparse._SubParsersAction) -> None:
    """Add the attack command."""
    attack = commands.add_parser("attack", help="FGSM / PGD adversarial examples of a run and its robust accuracy")
    attack.add_argument("run", help="run directory written by cnnlab train")
    attack.add_argument("--method", choices=["fgsm", "pgd"], default="pgd")
    attack.add_argument("--eps", default="8/255", help="L-inf (or L2) radius in pixels of 0..1, e.g. 0.3 or 8/255")
    attack.add_argument("--eps-list", default=None, help="comma list of eps for the robust-accuracy curve (FGSM and the method)")
    attack.add_argument("--steps", type=positive_int, default=10)
    attack.add_argument("--step-size", default=None, help="PGD step (default 2.5 eps / steps)")
    attack.add_argument("--norm", choices=["linf", "l2"], default="linf")
    attack.add_argument("--no-random-start", action="store_true")
    attack.add_argument("--target", type=int, default=None, help="targeted attack towards this class")
    attack.add_argument("--count", type=positive_int, default=1000, help="test images to attack")
    attack.add_argument("--show", type=positive_int, default=6, help="examples in the picture")
    attack.add_argument("--data-dir", default=None)
    attack.add_argument("--checkpoint", choices=["auto", "best", "last"], default=None)
    attack.add_argument("--device", default="auto")
    attack.add_argument("--seed", type=int, default=0)
    attack.add_argument("--out", default=None, help="output folder (default: RUN/attack)")
    attack.set_defaults(func=run_attack)


def run_attack(args: argparse.Namespace) -> int:
    """Write examples.png, accuracy.json (and curve.png with --eps-list) and print the accuracy table."""
    import torch

    from cnnlab.attacks import fgsm, pgd, robust_accuracy
    from cnnlab.attacks.pictures import curve_png, examples_png
    from cnnlab.errors import CnnlabError
    from cnnlab.runs.load import load_run
    from cnnlab.train.distributed import init_distributed

    _, device = init_distributed(args.device)
    run = load_run(Path(args.run), args.checkpoint, device)
    test = run.test_split(args.data_dir)
    if not hasattr(test, "images") or test.labels.ndim != 1:
        raise CnnlabError(f"{args.run} needs a classification test split held in memory to attack")
    images = test.images[: args.count].to(device).float() / 255.0
    labels = test.labels[: args.count].to(device)
    if args.target is not None and not 0 <= args.target < len(run.classes):
        raise CnnlabError(f"target {args.target} is out of range: the run has {len(run.classes)} classes")
    mean, std = run.normalisation.mean, run.normalisation.std
    eps = parse_eps(args.eps)
    step = parse_eps(args.step_size) if args.step_size else None
    goal = labels if args.target is None else torch.full_like(labels, args.target)
    common = {"mean": mean, "std": std}
    if args.method == "fgsm":
        adversarial = fgsm(run.model, images, goal, eps, targeted=args.target is not None, **common)
    else:
        adversarial = pgd(run.model, images, goal, eps, steps=args.steps, step_size=step, norm=args.norm,
                          random_start=not args.no_random_start, targeted=args.target is not None, seed=args.seed, **common)
    out = Path(args.out) if args.out else Path(args.run) / "attack"
    out.mkdir(parents=True, exist_ok=True)
    m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device).view(1, -1, 1, 1)
    with torch.no_grad():
        clean = torch.cat([run.model((images[i:i + 256] - m) / s).argmax(1) for i in range(0, len(images), 256)])
        attacked = torch.cat([run.model((adversarial[i:i + 256] - m) / s).argmax(1) for i in range(0, len(images), 256)])
    report = {
        "run": str(args.run), "method": args.method, "norm": args.norm, "eps": eps, "steps": args.steps if args.method == "pgd" else 1,
        "targeted": args.target, "images": len(images), "clean_accuracy": float((clean == labels).float().mean()),
        "adversarial_accuracy": float((attacked == labels).float().mean()),
        "max_perturbation": float((adversarial - images).flatten(1).abs().amax(1).max()),
    }
    if args.target is not None:
        report["target_hit_rate"] = float((attacked == args.target).float().mean())
    if args.eps_list:
        grid = [parse_eps(e) for e in args.eps_list.split(",") if e.strip()]
        curves = {}
        for method in ("fgsm", args.method) if args.method == "pgd" else ("fgsm",):
            options = {} if method == "fgsm" else {"steps": args.steps, "norm": args.norm, "random_start": not args.no_random_start,
                                                   "seed": args.seed}
            curve = robust_accuracy(run.model, images, labels, method, grid, **common, **options)
            curves[method] = [(r.eps, r.accuracy) for r in curve]
        report["curves"] = {k: [{"eps": e, "accuracy": a} for e, a in v] for k, v in curves.items()}
        curve_png(curves, out / "curve.png", f"{run.info.model} on {run.info.spec}: robust accuracy ({args.norm})")
    names = run.classes
    shown = min(args.show, len(images))
    examples_png(images[:shown], adversarial[:shown], [names[int(c)] for c in clean[:shown]],
                 [names[int(c)] for c in attacked[:shown]], out / "examples.png")
    (out / "accuracy.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.method} eps {eps:.4g} ({args.norm}) on {len(images)} test images: accuracy {report['clean_accuracy']:.2%} -> "
          f"{report['adversarial_accuracy']:.2%}")
    for method, points in report.get("curves", {}).items():
        print(f"{method}: " + ", ".join(f"eps {p['eps']:.3g} {p['accuracy']:.1%}" for p in points))
    print(f"wrote {out}")
    return 0
