"""`cnnlab explain`, `cnnlab sanity`, `cnnlab faithfulness`: maps of a run's model and the checks of them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnlab.cli.domains import Choice, Pair, Text
from cnnlab.cli.numeric import Integer
from cnnlab.cli.options import Spec, add, option

if TYPE_CHECKING:
    from cnnlab.runs.outputs import Output


def _common(parser: argparse.ArgumentParser, default_method: str, old: tuple[str, ...] = ()) -> None:
    option(parser, Spec("subject", Text(), "run directory written by cnnlab train, or a zoo name (random weights)",
                        extra={"metavar": "RUN"}))
    add(parser, "method", default=default_method, deprecated=old)  # argparse types a string default only when used
    option(parser, Spec("--images", Text(), "image files (default: the first --count test images of the run)",
                        nargs="+", extra={"metavar": "FILE"}))
    add(parser, "count", default=4, help="test images to explain when --images is not given")
    add(parser, "data_dir")
    add(parser, "layer", help="layer of CAM methods (default: the model's last stage)")
    add(parser, "target", help="class to explain (default: the predicted class)")
    add(parser, "checkpoint")
    option(parser, Spec("--max-batch", Integer(1, 1_000_000), "rows per forward pass (default: fit the free memory)"))
    add(parser, "device")
    add(parser, "seed", default=0)
    option(parser, Spec("--option", Pair(empty=False), "method option key=value, e.g. steps=64 or upsample=field; each method takes "
                        "the ones it knows (a value is read as in recipe overrides)", extra={"action": "append", "default": []}))


def register(commands: argparse._SubParsersAction) -> None:
    """Add the explain, sanity and faithfulness commands."""
    explain = commands.add_parser("explain", help="attribution maps of images: overlays, raw maps and a JSON")
    _common(explain, "gradcam")
    add(explain, "out", help="folder to write into (default: RUN/explain)")
    option(explain, Spec("--box", Integer(0, 99), "detection runs: explain each image's K-th most confident box "
                         "(0: the surest), the score of its class", extra={"metavar": "K"}))
    option(explain, Spec("--list", None, "list the methods and exit"))
    explain.set_defaults(func=run_explain)

    sanity = commands.add_parser("sanity", help="cascading randomisation (and data randomisation) of a method's maps")
    _common(sanity, "saliency")
    sanity.set_defaults(box=None)
    option(sanity, Spec("--random-labels", Text(), "run trained on permuted labels (data randomisation test)", extra={"metavar": "RUN"}))
    add(sanity, "out", help="folder to write into (default: RUN/sanity)")
    sanity.set_defaults(func=run_sanity)

    faith = commands.add_parser("faithfulness", help="deletion / insertion AUC, infidelity and max-sensitivity per method")
    _common(faith, "saliency,integrated_gradients,gradcam", old=("--methods",))
    faith.set_defaults(box=None)
    add(faith, "steps", default=32, help="deletion / insertion steps (at most the image's pixels)")
    option(faith, Spec("--baseline", Choice(("blur", "zero", "rise")),
                       "what deleted pixels become (and insertion starts from); rise: zero for deletion, blur for insertion", "blur"))
    option(faith, Spec("--no-sensitivity", None, "skip max-sensitivity (it reruns each method)"))
    add(faith, "out", help="folder to write into (default: RUN/faithfulness)")
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
    detector: bool = False  # a detection run's model: explained one box at a time (--box)


def parse_options(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Return the --option pairs (already typed by cli.domains.Pair) as a dict, the last of a repeated key winning."""
    return dict(pairs)


def load_subject(args: argparse.Namespace) -> Subject:
    """Return the model behind its normalisation, the images to explain and where outputs go."""
    import torch

    from cnnlab.data.images import read_image_file, resize_images
    from cnnlab.errors import CnnlabError
    from cnnlab.explain import PixelModel
    from cnnlab.train.distributed import init_distributed

    _, device = init_distributed(args.device)
    path = Path(args.subject)
    detector = False
    if path.is_dir():
        from cnnlab.runs.info import TaskName
        from cnnlab.runs.load import load_run

        run = load_run(path, args.checkpoint, device)
        detector = run.info.task is TaskName.DETECTION
        if detector != (args.box is not None):
            raise CnnlabError(f"{path} is a detection run: give --box K (0: each image's surest box)" if detector else
                              f"--box explains a detector's boxes, and {path} is a {run.info.task.value} run: leave it out")
        model = PixelModel(run.model, run.normalisation.mean, run.normalisation.std).to(device)
        classes, home = run.classes, path
        if detector and run.info.model.startswith("tv/"):
            raise CnnlabError(f"--box explains yolo_v1 and centernet runs; {run.info.model} decodes and ranks its boxes "
                              "anew for every perturbed image, so box K would not stay one box: explain a zoo detector")
        if args.images:
            images = run.read_images(args.images)
            names = [Path(n).stem for n in args.images]
        else:
            test = run.test_split(args.data_dir)
            if test.resident() is None:
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
            loaded.append(resize_images(read_image_file(name, size[0])[None], size[1], size[2]))
        images, names = torch.cat(loaded), [Path(n).stem for n in args.images]
        classes = tuple(str(i) for i in range(model.model.num_classes)) if hasattr(model.model, "num_classes") else ()
        home = Path(".")
    layer = model.layer_name(args.layer) if args.layer else None
    return Subject(model, images.to(device).float() / 255.0, names, classes, home, layer, path.is_dir() and detector)



def run_explain(args: argparse.Namespace) -> int:
    """Write per image: an overlay PNG per method (a grid for several), the raw maps as safetensors, a JSON."""
    from cnnlab.explain import attribute, list_methods
    from cnnlab.explain.api import method_options

    if args.list:
        print("\n".join(list_methods()))
        return 0
    import torch

    methods, options, subject, out = prepare(args, "explain")
    if subject.detector:
        return _explain_boxes(args, methods, options, subject, out)
    out.check([f"{name}{suffix}" for name in subject.names for suffix in (".safetensors", ".json", _picture(methods))])
    results = {}
    for method in methods:
        taken = method_options(method, options, args.seed)
        layer = subject.layer if method in list_methods("cam") else None
        results[method] = attribute(subject.model, subject.images, method, args.target, layer, max_batch=args.max_batch, **taken)
    first = next(iter(results.values()))
    probabilities = first.extras.get("probabilities")
    if probabilities is None:  # a given --target skips the logits pass inside attribute
        from cnnlab.explain.kit.batching import predict

        with torch.no_grad():
            logits = predict(subject.model.eval(), subject.images, args.max_batch or 64)
        probabilities = logits.softmax(1).gather(1, first.targets.view(-1, 1)).squeeze(1)
    for index, name in enumerate(subject.names):
        target = int(first.targets[index])
        label = subject.classes[target] if target < len(subject.classes) else str(target)
        record = {
            "image": name, "target": target, "class": label,
            "probability": round(float(probabilities[index]), 6),
            "methods": {m: {"seconds_per_image": round(a.seconds / len(subject.names), 6), "options": _plain(a.options),
                            "layer": a.layer} for m, a in results.items()},
        }
        out.json(f"{name}.json", record)
        _write_maps(out, name, subject.images[index], results, index, f"{label} ({record['probability']:.0%})")
    timings = ", ".join(f"{m} {a.seconds:.2f}s" for m, a in results.items())
    print(f"explained {len(subject.names)} images with {len(results)} methods ({timings}); wrote {out.folder}")
    return 0


def _picture(methods: list[str]) -> str:
    """Return the suffix of an image's picture: _METHOD.png for one method, _grid.png for several."""
    return f"_{methods[0]}.png" if len(methods) == 1 else "_grid.png"


def _write_maps(out: Output, stem: str, image: Any, results: dict[str, Any], index: int, caption: str) -> None:
    """Write one image's raw maps (STEM.safetensors) and its picture: an overlay for one method, a grid for several."""
    from safetensors.torch import save_file

    from cnnlab.explain.pictures.render import grid, overlay

    maps = {m: a.maps[index].contiguous().cpu() for m, a in results.items()}
    out.write(f"{stem}.safetensors", lambda path: save_file(maps, str(path)))
    if len(results) == 1:
        method, attribution = next(iter(results.items()))
        heat = attribution.heatmap()[index]
        out.write(f"{stem}_{method}.png", lambda path: overlay(image, heat, path, f"{method}: {caption}"))
    else:
        heats = {m: a.heatmap()[index] for m, a in results.items()}
        out.write(f"{stem}_grid.png", lambda path: grid(image, heats, path, caption))


def _explain_boxes(args: argparse.Namespace, methods: list[str], options: dict[str, Any], subject: Subject,
                   out: Output) -> int:
    """Write, per image, the maps of its --box K-th surest detection's class score, with the box drawn, and a JSON."""
    import torch
    from torchvision.utils import draw_bounding_boxes

    from cnnlab.errors import CnnlabError
    from cnnlab.explain import PixelModel, attribute, list_methods
    from cnnlab.explain.api import method_options
    from cnnlab.explain.kit.pixels import BoxScore
    from cnnlab.train.tasks.detection import SCORE_THRESHOLD, detections

    if args.target is not None:
        raise CnnlabError("--target is a classifier's: a box is explained for its own class; leave --target out")
    pixel, detector = subject.model, subject.model.model
    mean, std = tuple(pixel.mean.flatten().tolist()), tuple(pixel.std.flatten().tolist())
    out.check([f"{name}_box{args.box}{suffix}" for name in subject.names
               for suffix in (".safetensors", ".json", _picture(methods))])
    explained = 0
    for index, name in enumerate(subject.names):
        image = subject.images[index : index + 1]
        with torch.no_grad():
            found = detections(pixel.eval()(image))[0]
        if len(found.scores) <= args.box:
            print(f"{name}: {len(found.scores)} detections, no box {args.box}: left out")
            continue
        row = int(found.index[args.box])
        classes = len(subject.classes)
        candidate, target = row // classes, row % classes
        wrapped = PixelModel(BoxScore(detector, candidate), mean, std).to(image.device)
        layer = subject.layer.replace("model.", "model.detector.", 1) if subject.layer else None
        results = {m: attribute(wrapped, image, m, target, layer if m in list_methods("cam") else None,
                                max_batch=args.max_batch, **method_options(m, options, args.seed)) for m in methods}
        box = [round(float(v), 2) for v in found.boxes[args.box]]
        label = f"{subject.classes[target]} {float(found.scores[args.box]):.2f}"
        drawn = draw_bounding_boxes((image[0].cpu() * 255).round().to(torch.uint8).expand(3, -1, -1),
                                    torch.tensor([box]), colors="#d62728", width=1).float() / 255
        stem = f"{name}_box{args.box}"
        out.json(f"{stem}.json", {"image": name, "box": args.box, "candidate": candidate, "class": subject.classes[target],
                                  "target": target, "score": round(float(found.scores[args.box]), 6), "xyxy": box,
                                  "methods": {m: {"seconds": round(a.seconds, 6), "options": _plain(a.options),
                                                  "layer": a.layer} for m, a in results.items()}})
        _write_maps(out, stem, drawn, results, 0, f"box {args.box}: {label}")
        explained += 1
    if not explained:
        print(f"no image has a box {args.box} scoring {SCORE_THRESHOLD} or more: nothing written (try --box 0, or "
              "other --images)")
        return 0
    print(f"explained box {args.box} of {explained} of {len(subject.names)} images with {len(methods)} methods; "
          f"wrote {out.folder}")
    return 0


def prepare(args: argparse.Namespace, folder: str) -> tuple[list[str], dict[str, Any], Subject, Output]:
    """Return the methods, the checked --option values, the subject and the output folder."""
    from cnnlab.explain import list_methods
    from cnnlab.explain.api import check_pairs
    from cnnlab.runs.outputs import Output

    methods = list(args.method)
    CAMS = list_methods("cam")
    if args.layer is not None and not set(methods) & set(CAMS):
        from cnnlab.errors import CnnlabError

        raise CnnlabError(f"--layer is for the CAM methods ({', '.join(CAMS)}); {', '.join(methods)} would ignore it: leave it out")
    options = parse_options(args.option)
    check_pairs(methods, options)  # before any model is loaded: a bad value costs nothing
    if args.out is not None:
        Output(args.out)  # a file where a folder is meant, or a run's own file: refused before the work
    subject = load_subject(args)
    if args.target is not None and subject.classes and args.target >= len(subject.classes):
        from cnnlab.errors import CnnlabError

        raise CnnlabError(f"--target {args.target} is out of range: the model has {len(subject.classes)} classes (0-"
                          f"{len(subject.classes) - 1})")
    return methods, options, subject, Output(args.out or subject.home / folder)


def _plain(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, int | float | str | bool) or v is None else str(v) for k, v in options.items()}


def run_sanity(args: argparse.Namespace) -> int:
    """Write sanity.png (the curves) and sanity.json (the numbers) of cascading (and data) randomisation."""
    from cnnlab.errors import CnnlabError
    from cnnlab.explain.api import method_options
    from cnnlab.explain.checks.sanity import cascading_randomization, data_randomization
    from cnnlab.explain.pictures.render import sanity_curve

    methods, options, subject, out = prepare(args, "sanity")
    random_model = None
    if args.random_labels:
        from cnnlab.explain import PixelModel
        from cnnlab.runs.load import load_run

        shuffled = load_run(Path(args.random_labels), args.checkpoint, subject.images.device)
        if shuffled.classes != subject.classes or shuffled.info.image_size != tuple(subject.images.shape[1:]):
            raise CnnlabError(f"--random-labels {args.random_labels} was trained on {len(shuffled.classes)} classes of "
                              f"{'x'.join(map(str, shuffled.info.image_size))} images, {args.subject} on {len(subject.classes)} "
                              f"of {'x'.join(map(str, subject.images.shape[1:]))}: give a run of the same data with permuted labels")
        random_model = PixelModel(shuffled.model, shuffled.normalisation.mean, shuffled.normalisation.std).to(subject.images.device)
    curves, report = {}, {"images": len(subject.names), "methods": {}}
    for method in methods:
        result = cascading_randomization(subject.model, subject.images, method, args.target, subject.layer,
                                         init_seed=args.seed, max_batch=args.max_batch, **method_options(method, options, args.seed))
        curves[method] = result.rows
        report["methods"][method] = {"cascading": result.rows, "final": result.final()}
    if random_model is not None:
        for method in methods:
            report["methods"][method]["data_randomization"] = data_randomization(
                subject.model, random_model, subject.images, method, args.target, subject.layer, max_batch=args.max_batch,
                **method_options(method, options, args.seed))
    picture = out.write("sanity.png", lambda path: sanity_curve(curves, path))
    numbers = out.json("sanity.json", report)
    for method, entry in report["methods"].items():
        final = entry["final"]
        data = entry.get("data_randomization")
        extra = f"; random labels: spearman {data['spearman_abs']:.3f}" if data else ""
        print(f"{method}: after {final['randomised']} layers randomised, spearman |map| {final['spearman_abs']:.3f}, "
              f"ssim {final['ssim']:.3f}, hog {final['hog']:.3f}{extra}")
    print(f"wrote {picture} and {numbers}")
    return 0


def run_faithfulness(args: argparse.Namespace) -> int:
    """Print and write the table of methods against deletion / insertion AUC, infidelity and max-sensitivity."""
    from cnnlab.errors import CnnlabError
    from cnnlab.explain.api import method_options
    from cnnlab.explain.checks.faithfulness import faithfulness

    methods, options, subject, out = prepare(args, "faithfulness")
    pixels = subject.images.shape[-1] * subject.images.shape[-2]
    if args.steps > pixels:
        raise CnnlabError(f"--steps {args.steps} is more than the {pixels} pixels of each image: give at most --steps {pixels}")
    rows = faithfulness(subject.model, subject.images, methods, args.target, subject.layer, steps=args.steps,
                        baseline=args.baseline, seed=args.seed, max_batch=args.max_batch, sensitivity=not args.no_sensitivity,
                        options={m: method_options(m, options, args.seed) for m in methods})
    written = out.json("faithfulness.json", {"images": len(subject.names), "baseline": args.baseline, "steps": args.steps, "rows": rows})
    header = f"{'method':<22} {'deletion':>9} {'random':>8} {'insertion':>10} {'random':>8} {'infidelity':>11} {'max-sens':>9}"
    print(header)
    for row in rows:
        sens = f"{row['max_sensitivity']:9.3f}" if "max_sensitivity" in row else f"{'-':>9}"
        print(f"{row['method']:<22} {row['deletion_auc']:9.3f} {row['random_deletion_auc']:8.3f} {row['insertion_auc']:10.3f} "
              f"{row['random_insertion_auc']:8.3f} {row['infidelity']:11.4g} {sens}")
    print(f"AUCs of the target probability; deletion should lie below random, insertion above. Wrote {written}")
    return 0
