"""`cnnlab explain`, `cnnlab sanity`, `cnnlab faithfulness`: maps of a run's model and the checks of them."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab.cli.common import positive_int

DEFAULT_GRID = ("saliency", "input_x_gradient", "smoothgrad", "integrated_gradients", "guided_backprop", "deconvnet",
                "gradcam", "gradcam_pp", "layercam", "scorecam", "eigencam", "lrp", "occlusion", "rise")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subject", help="run directory written by cnnlab train, or a zoo name (random weights)")
    parser.add_argument("--images", nargs="*", default=None, help="image files (default: the first --count test images of the run)")
    parser.add_argument("--count", type=positive_int, default=4, help="test images to explain when --images is not given")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--layer", default=None, help="layer of CAM methods (default: the model's last stage)")
    parser.add_argument("--target", type=int, default=None, help="class to explain (default: the predicted class)")
    parser.add_argument("--checkpoint", choices=["auto", "best", "last"], default=None)
    parser.add_argument("--max-batch", type=positive_int, default=None, help="rows per forward pass (default: fit the free memory)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="method option, e.g. steps=64 or upsample=field; each method takes the ones it knows")


def register(commands: argparse._SubParsersAction) -> None:
    """Add the explain, sanity and faithfulness commands."""
    explain = commands.add_parser("explain", help="attribution maps of images: overlays, raw maps and a JSON")
    _common(explain)
    explain.add_argument("--method", default="gradcam", help="a method, a comma list, or all (see --list)")
    explain.add_argument("--out", default=None, help="output folder (default: RUN/explain)")
    explain.add_argument("--list", action="store_true", help="list the methods and exit")
    explain.set_defaults(func=run_explain)

    sanity = commands.add_parser("sanity", help="cascading randomisation (and data randomisation) of a method's maps")
    _common(sanity)
    sanity.add_argument("--method", default="saliency", help="a method or a comma list")
    sanity.add_argument("--random-labels", default=None, metavar="RUN", help="run trained on permuted labels (data randomisation test)")
    sanity.add_argument("--out", default=None, help="output folder (default: RUN/sanity)")
    sanity.set_defaults(func=run_sanity)

    faith = commands.add_parser("faithfulness", help="deletion / insertion AUC, infidelity and max-sensitivity per method")
    _common(faith)
    faith.add_argument("--methods", default="saliency,integrated_gradients,gradcam", help="comma list of methods")
    faith.add_argument("--steps", type=positive_int, default=32, help="deletion / insertion steps")
    faith.add_argument("--baseline", choices=["blur", "zero", "rise"], default="blur",
                       help="what deleted pixels become (and insertion starts from); rise: zero for deletion, blur for insertion")
    faith.add_argument("--no-sensitivity", action="store_true", help="skip max-sensitivity (it reruns each method)")
    faith.add_argument("--out", default=None, help="output folder (default: RUN/faithfulness)")
    faith.set_defaults(func=run_faithfulness)


@dataclass
class Subject:
    """What the commands explain: a pixel-space model, its images in [0, 1] and their names."""

    model: Any
    images: Any
    names: list[str]
    classes: tuple[str, ...]
    home: Path
    layer: str | None


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """Return KEY=VALUE words as a dict of numbers, booleans and strings."""
    from cnnlab.errors import CnnlabError

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CnnlabError(f"option {pair!r} is not KEY=VALUE: write e.g. --option steps=64")
        options[key] = _value(value)
    return options


def load_subject(args: argparse.Namespace) -> Subject:
    """Return the model behind its normalisation, the images to explain and where outputs go."""
    import torch

    from cnnlab.data.images import read_image, resize_images
    from cnnlab.errors import CnnlabError
    from cnnlab.explain import PixelModel
    from cnnlab.train.distributed import init_distributed

    _, device = init_distributed(args.device)
    path = Path(args.subject)
    if path.is_dir():
        from cnnlab.runs.load import load_run

        run = load_run(path, args.checkpoint, device)
        model = PixelModel(run.model, run.normalisation.mean, run.normalisation.std).to(device)
        channels, height, width = run.info.image_size
        classes, home = run.classes, path
        if args.images:
            loaded = []
            for name in args.images:
                image = read_image(Path(name), channels)
                if image is None:
                    raise CnnlabError(f"cannot read image {name}: give a PNG or JPEG file")
                loaded.append(image[None] if run.info.resize else resize_images(image[None], height, width))
            images = run.prepare(torch.cat(loaded))
            names = [Path(n).stem for n in args.images]
        else:
            test = run.test_split(args.data_dir)
            if not hasattr(test, "images"):
                raise CnnlabError(f"{path}'s test split is streamed from files: name the images to explain with --images")
            images = test.images[: args.count]
            names = [f"test{i:04d}" for i in range(len(images))]
    else:
        from cnnlab.models.registry import create_model, model_info

        if not args.images:
            raise CnnlabError(f"{args.subject} is not a run directory: name the images to explain with --images, or give a run")
        try:
            size = model_info(args.subject).input_size
        except CnnlabError:  # tv/ and timm/ names: ImageNet's size
            size = (3, 224, 224)
        model = PixelModel(create_model(args.subject), (0.5,) * size[0], (0.25,) * size[0]).to(device)
        loaded = []
        for name in args.images:
            image = read_image(Path(name), size[0])
            if image is None:
                raise CnnlabError(f"cannot read image {name}: give a PNG or JPEG file")
            loaded.append(resize_images(image[None], size[1], size[2]))
        images, names = torch.cat(loaded), [Path(n).stem for n in args.images]
        classes = tuple(str(i) for i in range(model.model.num_classes)) if hasattr(model.model, "num_classes") else ()
        home = Path(".")
    layer = model.layer_name(args.layer) if args.layer else None
    return Subject(model, images.to(device).float() / 255.0, names, classes, home, layer)


def _methods(text: str) -> list[str]:
    from cnnlab.errors import CnnlabError
    from cnnlab.explain import list_methods

    if text == "all":
        return list(DEFAULT_GRID)
    methods = [m.strip() for m in text.split(",") if m.strip()]
    known = set(list_methods())
    for method in methods:
        if method not in known:
            import difflib

            close = difflib.get_close_matches(method, known, n=3)
            raise CnnlabError(f"unknown method {method!r}: {'did you mean ' + ', '.join(close) + '?' if close else 'see cnnlab explain --list'}")
    return methods


def run_explain(args: argparse.Namespace) -> int:
    """Write per image: an overlay PNG per method (a grid for several), the raw maps as safetensors, a JSON."""
    from safetensors.torch import save_file

    from cnnlab.explain import attribute, list_methods
    from cnnlab.explain.render import grid, overlay

    if args.list:
        print("\n".join(list_methods()))
        return 0
    import torch

    methods, options, subject, out = prepare(args, args.method, "explain")
    results = {}
    for method in methods:
        taken = method_options(method, options, args.seed)
        layer = subject.layer if method in _LAYERED else None
        results[method] = attribute(subject.model, subject.images, method, args.target, layer, max_batch=args.max_batch, **taken)
    first = next(iter(results.values()))
    probabilities = first.extras.get("probabilities")
    if probabilities is None:  # a given --target skips the logits pass inside attribute
        from cnnlab.explain.core import predict

        with torch.no_grad():
            logits = predict(subject.model.eval(), subject.images, args.max_batch or 64)
        probabilities = logits.softmax(1).gather(1, first.targets.view(-1, 1)).squeeze(1)
    for index, name in enumerate(subject.names):
        target = int(first.targets[index])
        label = subject.classes[target] if target < len(subject.classes) else str(target)
        save_file({m: a.maps[index].contiguous().cpu() for m, a in results.items()}, str(out / f"{name}.safetensors"))
        record = {
            "image": name, "target": target, "class": label,
            "probability": round(float(probabilities[index]), 6),
            "methods": {m: {"seconds_per_image": round(a.seconds / len(subject.names), 6), "options": _plain(a.options),
                            "layer": a.layer} for m, a in results.items()},
        }
        (out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        image = subject.images[index]
        if len(results) == 1:
            method, attribution = next(iter(results.items()))
            overlay(image, attribution.heatmap()[index], out / f"{name}_{method}.png", f"{method}: {label} ({record['probability']:.0%})")
        else:
            grid(image, {m: a.heatmap()[index] for m, a in results.items()}, out / f"{name}_grid.png", f"{label} ({record['probability']:.0%})")
    timings = ", ".join(f"{m} {a.seconds:.2f}s" for m, a in results.items())
    print(f"explained {len(subject.names)} images with {len(results)} methods ({timings}); wrote {out}")
    return 0


_SEEDED = {"smoothgrad", "smoothgrad_sq", "vargrad", "expected_gradients", "gradient_shap", "rise", "lime", "kernel_shap"}
_LAYERED = {"cam", "gradcam", "gradcam_pp", "xgradcam", "hirescam", "layercam", "scorecam", "eigencam", "guided_gradcam"}


_OPTIONS = {
    "integrated_gradients": {"steps", "rule", "baseline", "sigma"}, "smoothgrad": {"samples", "noise"},
    "smoothgrad_sq": {"samples", "noise"}, "vargrad": {"samples", "noise"}, "expected_gradients": {"samples", "noise"},
    "gradient_shap": {"samples", "noise"}, "occlusion": {"window", "stride", "fill"}, "rise": {"masks", "cells", "p"},
    "lime": {"samples", "segments", "superpixels", "kernel_width", "ridge"}, "kernel_shap": {"samples", "segments", "superpixels"},
    "lrp": {"composite", "first", "conv", "linear", "epsilon", "stabilizer", "gamma", "low", "high"}, "deeplift": {"baseline"},
}


def method_options(method: str, options: dict[str, Any], seed: int) -> dict[str, Any]:
    """Return the --option values this method takes (a grid of methods shares one --option list), and its seed."""
    taken = {k: v for k, v in options.items() if k in _OPTIONS.get(method, set()) or (k == "upsample" and method in _LAYERED)}
    if method in _SEEDED:
        taken["seed"] = seed
    return taken


def check_taken(methods: list[str], options: dict[str, Any]) -> None:
    """Raise a one-line error for an --option key that none of the chosen methods takes."""
    from cnnlab.errors import CnnlabError

    for key in options:
        if not any(key in method_options(m, {key: None}, 0) for m in methods):
            raise CnnlabError(f"no chosen method takes the option {key!r} ({', '.join(methods)}): check its spelling")


def prepare(args: argparse.Namespace, methods_text: str, folder: str) -> tuple[list[str], dict[str, Any], Subject, Path]:
    """Return the methods, the checked --option values, the subject and the output folder (created)."""
    methods = _methods(methods_text)
    options = parse_options(args.option)
    check_taken(methods, options)
    subject = load_subject(args)
    out = Path(args.out) if args.out else subject.home / folder
    out.mkdir(parents=True, exist_ok=True)
    return methods, options, subject, out


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, int | float | str | bool) or v is None else str(v) for k, v in options.items()}


def run_sanity(args: argparse.Namespace) -> int:
    """Write sanity.png (the curves) and sanity.json (the numbers) of cascading (and data) randomisation."""
    from cnnlab.explain.render import sanity_curve
    from cnnlab.explain.sanity import cascading_randomization, data_randomization

    methods, options, subject, out = prepare(args, args.method, "sanity")
    curves, report = {}, {"images": len(subject.names), "methods": {}}
    for method in methods:
        result = cascading_randomization(subject.model, subject.images, method, args.target, subject.layer,
                                         init_seed=args.seed, max_batch=args.max_batch, **method_options(method, options, args.seed))
        curves[method] = result.rows
        report["methods"][method] = {"cascading": result.rows, "final": result.final()}
    if args.random_labels:
        from cnnlab.explain import PixelModel
        from cnnlab.runs.load import load_run

        shuffled = load_run(Path(args.random_labels), args.checkpoint, subject.images.device)
        random_model = PixelModel(shuffled.model, shuffled.normalisation.mean, shuffled.normalisation.std).to(subject.images.device)
        for method in methods:
            report["methods"][method]["data_randomization"] = data_randomization(
                subject.model, random_model, subject.images, method, args.target, subject.layer, max_batch=args.max_batch,
                **method_options(method, options, args.seed))
    sanity_curve(curves, out / "sanity.png")
    (out / "sanity.json").write_text(json.dumps(report, indent=2) + "\n")
    for method, entry in report["methods"].items():
        final = entry["final"]
        data = entry.get("data_randomization")
        extra = f"; random labels: spearman {data['spearman_abs']:.3f}" if data else ""
        print(f"{method}: after {final['randomised']} layers randomised, spearman |map| {final['spearman_abs']:.3f}, "
              f"ssim {final['ssim']:.3f}, hog {final['hog']:.3f}{extra}")
    print(f"wrote {out / 'sanity.png'} and {out / 'sanity.json'}")
    return 0


def run_faithfulness(args: argparse.Namespace) -> int:
    """Print and write the table of methods against deletion / insertion AUC, infidelity and max-sensitivity."""
    from cnnlab.explain.faithfulness import faithfulness

    methods, options, subject, out = prepare(args, args.methods, "faithfulness")
    rows = faithfulness(subject.model, subject.images, methods, args.target, subject.layer, steps=args.steps,
                        baseline=args.baseline, seed=args.seed, max_batch=args.max_batch, sensitivity=not args.no_sensitivity,
                        options={m: method_options(m, options, args.seed) for m in methods})
    (out / "faithfulness.json").write_text(json.dumps({"images": len(subject.names), "baseline": args.baseline,
                                                       "steps": args.steps, "rows": rows}, indent=2) + "\n")
    header = f"{'method':<22} {'deletion':>9} {'random':>8} {'insertion':>10} {'random':>8} {'infidelity':>11} {'max-sens':>9}"
    print(header)
    for row in rows:
        sens = f"{row['max_sensitivity']:9.3f}" if "max_sensitivity" in row else f"{'-':>9}"
        print(f"{row['method']:<22} {row['deletion_auc']:9.3f} {row['random_deletion_auc']:8.3f} {row['insertion_auc']:10.3f} "
              f"{row['random_insertion_auc']:8.3f} {row['infidelity']:11.4g} {sens}")
    print(f"AUCs of the target probability; deletion should lie below random, insertion above. Wrote {out / 'faithfulness.json'}")
    return 0
