"""`cnnlab attack`: adversarial examples of a run's test images, their perturbation, and accuracy against eps."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli.domains import Choice, Text
from cnnlab.cli.numeric import Fraction, Fractions, Integer
from cnnlab.cli.options import Spec, add, option


def register(commands: argparse._SubParsersAction) -> None:
    """Add the attack command."""
    attack = commands.add_parser("attack", help="FGSM / PGD adversarial examples of a run and its robust accuracy")
    option(attack, Spec("run", Text(), "run directory written by cnnlab train", extra={"metavar": "RUN"}))
    option(attack, Spec("--method", Choice(("fgsm", "pgd")), "the attack", "pgd"))
    option(attack, Spec("--eps", Fraction(), "L-inf (or L2) radius in pixels of 0..1, e.g. 0.3 or 8/255", "8/255"))
    option(attack, Spec("--eps-list", Fractions(), "comma list of eps for the robust-accuracy curve (FGSM and the method)"))
    add(attack, "steps", default=10, help="PGD steps")
    option(attack, Spec("--step-size", Fraction(), "PGD step (default 2.5 eps / steps)"))
    option(attack, Spec("--norm", Choice(("linf", "l2")), "the norm eps bounds", "linf"))
    option(attack, Spec("--no-random-start", None, "start PGD at the image, not at a random point of the eps-ball"))
    add(attack, "target", help="targeted attack towards this class (default: untargeted)")
    add(attack, "count", default=1000, help="test images to attack")
    option(attack, Spec("--show", Integer(1, 1000), "examples in the picture", 6))
    add(attack, "data_dir")
    add(attack, "checkpoint")
    add(attack, "device")
    add(attack, "seed", default=0)
    add(attack, "out", help="folder to write into (default: RUN/attack)")
    attack.set_defaults(func=run_attack)


def run_attack(args: argparse.Namespace) -> int:
    """Write examples.png, accuracy.json (and curve.png with --eps-list) and print the accuracy table."""
    import torch

    from cnnlab.attacks import fgsm, pgd, robust_accuracy
    from cnnlab.attacks.pictures import curve_png, examples_png
    from cnnlab.errors import CnnlabError
    from cnnlab.runs.load import load_run
    from cnnlab.runs.outputs import Output
    from cnnlab.train.distributed import init_distributed

    out = Output(args.out or Path(args.run) / "attack")  # a bad --out is refused before the attack runs
    _, device = init_distributed(args.device)
    run = load_run(Path(args.run), args.checkpoint, device)
    test = run.test_split(args.data_dir)
    if test.resident() is None or test.labels.ndim != 1:
        raise CnnlabError(f"{args.run} needs a classification test split held in memory to attack")
    images = test.images[: args.count].to(device).float() / 255.0
    labels = test.labels[: args.count].to(device)
    if args.target is not None and not 0 <= args.target < len(run.classes):
        raise CnnlabError(f"target {args.target} is out of range: the run has {len(run.classes)} classes")
    mean, std = run.normalisation.mean, run.normalisation.std
    eps, step = args.eps, args.step_size  # typed, finite and >= 0 by cli.options
    goal = labels if args.target is None else torch.full_like(labels, args.target)
    common = {"mean": mean, "std": std}
    if args.method == "fgsm":
        adversarial = fgsm(run.model, images, goal, eps, targeted=args.target is not None, **common)
    else:
        adversarial = pgd(run.model, images, goal, eps, steps=args.steps, step_size=step, norm=args.norm,
                          random_start=not args.no_random_start, targeted=args.target is not None, seed=args.seed, **common)
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
        grid = list(args.eps_list)
        curves = {}
        for method in ("fgsm", args.method) if args.method == "pgd" else ("fgsm",):
            options = {} if method == "fgsm" else {"steps": args.steps, "norm": args.norm, "random_start": not args.no_random_start,
                                                   "seed": args.seed}
            curve = robust_accuracy(run.model, images, labels, method, grid, **common, **options)
            curves[method] = [(r.eps, r.accuracy) for r in curve]
        report["curves"] = {k: [{"eps": e, "accuracy": a} for e, a in v] for k, v in curves.items()}
        title = f"{run.info.model} on {run.info.spec}: robust accuracy ({args.norm})"
        out.write("curve.png", lambda path: curve_png(curves, path, title))
    names = run.classes
    shown = min(args.show, len(images))
    out.write("examples.png", lambda path: examples_png(images[:shown], adversarial[:shown], [names[int(c)] for c in clean[:shown]],
                                                        [names[int(c)] for c in attacked[:shown]], path))
    out.json("accuracy.json", report)
    print(f"{args.method} eps {eps:.4g} ({args.norm}) on {len(images)} test images: accuracy {report['clean_accuracy']:.2%} -> "
          f"{report['adversarial_accuracy']:.2%}")
    for method, points in report.get("curves", {}).items():
        print(f"{method}: " + ", ".join(f"eps {p['eps']:.3g} {p['accuracy']:.1%}" for p in points))
    print(f"wrote {out.folder}")
    return 0
