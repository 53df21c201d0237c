"""Images/s of cnnlab's attribution methods against the same methods in Captum and grad-cam, as JSON.

Same model (the zoo's CIFAR ResNet-20, untrained and seeded, its BatchNorm statistics taken from 64
seeded random images so it is not positively homogeneous), same inputs (seeded randn N x 3 x 32 x 32),
same targets (the predicted class), same dtype and device for both sides. For each method the runs
alternate, cnnlab and every peer setting in one round (the order reversed every other round), after
one untimed warm-up each; a run's wall time is measured with the benchmarks' Clock (CUDA events after
a synchronize on a GPU, perf_counter elsewhere), and images/s is N over the median of --repeats runs.
A peer that batches is run twice: at its default, and with its batch set to cnnlab's chunk (the
rows per forward pass cnnlab chose, `Attribution.options["max_batch"]`), so the ratio shows what
cnnlab's batching is worth and what is left once the peer batches as much. grad-cam objects are built
and released around each run outside the clock (their hooks stay on the model while they live).

Pairs: saliency / input_x_gradient / integrated_gradients (trapezoid and Gauss-Legendre, 32 steps) /
smoothgrad (16 samples, noise 0.15 x each image's range; Captum's one stdev is the mean of those) /
deeplift vs Captum; gradcam vs Captum's LayerGradCam (rectified, upsampled bilinearly like cnnlab's)
and grad-cam; gradcam_pp, xgradcam, hirescam, layercam, eigencam, scorecam vs grad-cam; occlusion
(window 4, stride 2, fill 0) vs Captum's Occlusion. Beside the speed: the completeness error of
cnnlab's (and Captum's) Gauss-Legendre IG, |sum(map) - (f(x) - f(0))| / |f(x) - f(0)|, median over
images; --bf16 repeats the IG and SmoothGrad pairs, and that check, in bfloat16 autocast.

Targets (ratio = cnnlab / peer images/s): >= 0.95 for deeplift, which wraps Captum's; >= 1.0 against
every peer setting (so against the fastest) for cnnlab's own methods; on the CPU >= 3.0 for scorecam
vs grad-cam's default and occlusion vs Captum's default; on a GPU >= 10 for scorecam vs grad-cam's
default and >= 2 for integrated_gradients and smoothgrad vs Captum. JSON on stdout, progress on stderr;
a peer that does not import is recorded as {"skipped": reason}.

    python benchmarks/explain_throughput.py [--images 16] [--repeats 5] [--device cpu] [--bf16]
    python benchmarks/explain_throughput.py --quick   # smoke test: 4 images, 1 repeat, few steps
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.explain import attribute
from cnnlab.models import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_name  # noqa: E402 - the benchmarks' CPU naming
from timing import Clock  # noqa: E402 - the benchmarks' one clock (CUDA events on a GPU)

# Captum's notes on every call (inputs made to require grad, hooks on the ReLUs) say nothing here.
warnings.filterwarnings("ignore", message="Input Tensor")
warnings.filterwarnings("ignore", message="Setting forward, backward hooks")

Run = Callable[[], Any]
Setup = Callable[[], tuple[Run, Callable[[], None]]]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _import_error(module: str) -> str | None:
    """Return why `module` does not import, or None when it does."""
    try:
        __import__(module)
    except Exception as error:  # any failure makes the peer optional
        return f"{module} does not import: {type(error).__name__}: {error}"
    return None


@dataclass
class Bench:
    """What every run shares: the model, the inputs, the targets, the layer and the settings."""

    model: nn.Module
    images: torch.Tensor
    targets: torch.Tensor
    layer: str
    device: torch.device
    steps: int
    samples: int
    noise: float
    window: int
    stride: int
    max_batch: int | None

    @property
    def count(self) -> int:
        return len(self.images)

    @property
    def layer_module(self) -> nn.Module:
        return dict(self.model.named_modules())[self.layer]

    def sigma(self) -> float:
        """Return the one stdev Captum takes: the mean over images of cnnlab's noise x (max - min)."""
        flat = self.images.flatten(1).float()
        return float((self.noise * (flat.amax(1) - flat.amin(1))).mean())


@dataclass
class Peer:
    """One peer setting: what it is called, how it is set up, or why it is skipped."""

    name: str
    settings: str  # "default" or "same chunk"
    options: dict[str, Any]
    setup: Setup | None = None
    skipped: str | None = None
    error: str | None = None
    seconds: list[float] = field(default_factory=list)
    output: Any = None


@dataclass
class Case:
    """One cnnlab method with its options, and the peers it is compared with (given cnnlab's chunk)."""

    label: str
    method: str
    options: dict[str, Any]
    peers: Callable[[Bench, int], list[Peer]]
    layer: bool = False
    bf16: bool = False


def _noop() -> None:
    return None


def _captum(name: str, settings: str, options: dict[str, Any], build: Callable[[Any], Any],
            call: Callable[[Any, Any], Any]) -> Peer:
    """Return a Captum peer: `build(captum.attr)` makes the explainer outside the clock, `call(it, captum.attr)` runs it."""
    missing = _import_error("captum.attr")
    if missing:
        return Peer(f"captum.attr.{name}", settings, options, skipped=missing)

    def setup() -> tuple[Run, Callable[[], None]]:
        import captum.attr

        explainer = build(captum.attr)
        return (lambda: call(explainer, captum.attr)), _noop

    return Peer(f"captum.attr.{name}", settings, options, setup)


def _grad_cam(bench: Bench, name: str, settings: str = "default", **attributes: Any) -> Peer:
    """Return a grad-cam peer: the CAM object is built and its hooks released around each run."""
    missing = _import_error("pytorch_grad_cam")
    if missing:
        return Peer(f"pytorch_grad_cam.{name}", settings, attributes, skipped=missing)
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    targets = [ClassifierOutputTarget(int(t)) for t in bench.targets.tolist()]
    kind = getattr(pytorch_grad_cam, name)

    def setup() -> tuple[Run, Callable[[], None]]:
        cam = kind(model=bench.model, target_layers=[bench.layer_module])
        for key, value in attributes.items():
            setattr(cam, key, value)

        def run() -> Any:
            # ScoreCAM draws a tqdm bar per image on stderr: it goes to /dev/null, inside the clock.
            with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
                return cam(input_tensor=bench.images, targets=targets)

        return run, cam.activations_and_grads.release

    return Peer(f"pytorch_grad_cam.{name}", settings, attributes, setup)


# --- the pairs -----------------------------------------------------------------------------------


def _saliency_peers(bench: Bench, chunk: int) -> list[Peer]:
    return [_captum("Saliency", "default", {"abs": True}, lambda attr: attr.Saliency(bench.model),
                    lambda e, attr: e.attribute(bench.images, target=bench.targets, abs=True))]


def _input_x_gradient_peers(bench: Bench, chunk: int) -> list[Peer]:
    return [_captum("InputXGradient", "default", {}, lambda attr: attr.InputXGradient(bench.model),
                    lambda e, attr: e.attribute(bench.images, target=bench.targets))]


def _ig_peers(method: str) -> Callable[[Bench, int], list[Peer]]:
    def peers(bench: Bench, chunk: int) -> list[Peer]:
        out = []
        for settings, extra in (("default", {}), ("same chunk", {"internal_batch_size": chunk})):
            options = {"n_steps": bench.steps, "method": method, "baselines": 0, **extra}
            out.append(_captum("IntegratedGradients", settings, options,
                               lambda attr: attr.IntegratedGradients(bench.model),
                               lambda e, attr, o=options: e.attribute(bench.images, target=bench.targets, **o)))
        return out
    return peers


def _smoothgrad_peers(bench: Bench, chunk: int) -> list[Peer]:
    # Captum's batch counts noise samples per image: chunk // N of them fill cnnlab's rows per pass.
    out = []
    for settings, extra in (("default", {}), ("same chunk", {"nt_samples_batch_size": max(1, chunk // bench.count)})):
        options = {"nt_type": "smoothgrad", "nt_samples": bench.samples, "stdevs": round(bench.sigma(), 6),
                   "abs": False, **extra}
        out.append(_captum("NoiseTunnel(Saliency)", settings, options,
                           lambda attr: attr.NoiseTunnel(attr.Saliency(bench.model)),
                           lambda e, attr, o=options: e.attribute(bench.images, target=bench.targets, **o)))
    return out


def _deeplift_peers(bench: Bench, chunk: int) -> list[Peer]:
    zeros = torch.zeros_like(bench.images)
    return [_captum("DeepLift", "default", {"baselines": 0}, lambda attr: attr.DeepLift(bench.model),
                    lambda e, attr: e.attribute(bench.images, zeros, target=bench.targets))]


def _cam_peers(name: str, with_captum: bool = False) -> Callable[[Bench, int], list[Peer]]:
    def peers(bench: Bench, chunk: int) -> list[Peer]:
        out = []
        if with_captum:
            size = tuple(bench.images.shape[-2:])
            out.append(_captum(
                "LayerGradCam", "default", {"relu_attributions": True, "upsample": "bilinear"},
                lambda attr: attr.LayerGradCam(bench.model, bench.layer_module),
                lambda e, attr: attr.LayerAttribution.interpolate(
                    e.attribute(bench.images, target=bench.targets, relu_attributions=True), size, "bilinear")))
        out.append(_grad_cam(bench, name))
        return out
    return peers


def _scorecam_peers(bench: Bench, chunk: int) -> list[Peer]:
    return [_grad_cam(bench, "ScoreCAM"), _grad_cam(bench, "ScoreCAM", "same chunk", batch_size=chunk)]


def _occlusion_peers(bench: Bench, chunk: int) -> list[Peer]:
    channels = bench.images.shape[1]
    base = {"sliding_window_shapes": (channels, bench.window, bench.window),
            "strides": (channels, bench.stride, bench.stride), "baselines": 0}
    # Each Captum evaluation holds perturbations_per_eval windows of all N images.
    variants = (("default", 1), ("same chunk", max(1, chunk // bench.count)))
    return [_captum("Occlusion", settings, {**base, "perturbations_per_eval": per_eval},
                    lambda attr: attr.Occlusion(bench.model),
                    lambda e, attr, o={**base, "perturbations_per_eval": per_eval}:
                        e.attribute(bench.images, target=bench.targets, **o))
            for settings, per_eval in variants]


def cases(bench: Bench, bf16: bool) -> list[Case]:
    """Return the pairs to time, in order; with `bf16`, the IG and SmoothGrad pairs once more in autocast."""
    ig = {"steps": bench.steps, "baseline": "black"}
    smooth = {"samples": bench.samples, "noise": bench.noise, "seed": 0}
    gradient = [
        Case("integrated_gradients (trapezoid)", "integrated_gradients", {**ig, "rule": "trapezoid"},
             _ig_peers("riemann_trapezoid")),
        Case("integrated_gradients (gauss_legendre)", "integrated_gradients", {**ig, "rule": "gauss_legendre"},
             _ig_peers("gausslegendre")),
        Case("smoothgrad", "smoothgrad", smooth, _smoothgrad_peers),
    ]
    out = [
        Case("saliency", "saliency", {}, _saliency_peers),
        Case("input_x_gradient", "input_x_gradient", {}, _input_x_gradient_peers),
        *gradient,
        Case("deeplift", "deeplift", {}, _deeplift_peers),
        Case("gradcam", "gradcam", {}, _cam_peers("GradCAM", with_captum=True), layer=True),
        Case("gradcam_pp", "gradcam_pp", {}, _cam_peers("GradCAMPlusPlus"), layer=True),
        Case("xgradcam", "xgradcam", {}, _cam_peers("XGradCAM"), layer=True),
        Case("hirescam", "hirescam", {}, _cam_peers("HiResCAM"), layer=True),
        Case("layercam", "layercam", {}, _cam_peers("LayerCAM"), layer=True),
        Case("eigencam", "eigencam", {}, _cam_peers("EigenCAM"), layer=True),
        Case("scorecam", "scorecam", {}, _scorecam_peers, layer=True),
        Case("occlusion", "occlusion", {"window": bench.window, "stride": bench.stride, "fill": 0},
             _occlusion_peers),
    ]
    if bf16:
        out += [Case(c.label, c.method, c.options, c.peers, c.layer, bf16=True) for c in gradient]
    return out


# --- timing --------------------------------------------------------------------------------------


def target_of(case: Case, peer: Peer, device: torch.device) -> tuple[float, str]:
    """Return the ratio cnnlab / peer this pair must reach, and why."""
    gpu = device.type == "cuda"
    if case.method == "deeplift":
        return 0.95, "wraps Captum's DeepLift: overhead within 5 %"
    if case.method == "scorecam" and peer.name.startswith("pytorch_grad_cam") and peer.settings == "default":
        return (10.0, "GPU: scorecam vs grad-cam's default") if gpu else (3.0, "CPU: scorecam vs grad-cam's default")
    if case.method == "occlusion" and peer.name.startswith("captum") and peer.settings == "default" and not gpu:
        return 3.0, "CPU: occlusion vs Captum's default"
    if gpu and case.method in ("integrated_gradients", "smoothgrad") and peer.name.startswith("captum"):
        return 2.0, "GPU: integrated_gradients and smoothgrad vs Captum"
    return 1.0, "own method: at least as fast as every peer setting, so as the fastest"


def _timed(run: Run, clock: Clock, device: torch.device, bf16: bool) -> tuple[float, Any]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        clock.start()
        out = run()
        seconds = clock.seconds()
    return seconds, out


def _peer_once(peer: Peer, clock: Clock, device: torch.device, bf16: bool) -> float:
    assert peer.setup is not None
    run, close = peer.setup()
    try:
        seconds, peer.output = _timed(run, clock, device, bf16)
    finally:
        close()
    return seconds


def completeness(bench: Bench, maps: torch.Tensor, bf16: bool) -> float:
    """Return the median over images of |sum(map) - (f(x) - f(0))| / |f(x) - f(0)| for the target logit."""
    pick = bench.targets.view(-1, 1)
    with torch.no_grad(), torch.autocast(bench.device.type, dtype=torch.bfloat16, enabled=bf16):
        fx = bench.model(bench.images).float().gather(1, pick).squeeze(1)
        f0 = bench.model(torch.zeros_like(bench.images)).float().gather(1, pick).squeeze(1)
    gap = fx - f0
    total = torch.as_tensor(maps).to(bench.device).float().flatten(1).sum(1)
    return float(((total - gap).abs() / gap.abs().clamp(min=1e-12)).median())


def _ips(count: int, seconds: list[float]) -> float:
    return count / statistics.median(seconds)


def measure(bench: Bench, case: Case, repeats: int, clock: Clock) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return the result rows of one case (one per peer setting) and its completeness check, if any."""
    dtype = "bf16" if case.bf16 else "fp32"
    tag = f"{case.label} [{dtype}]"

    def cnnlab() -> Any:
        return attribute(bench.model, bench.images, case.method, target=bench.targets,
                         layer=bench.layer if case.layer else None, max_batch=bench.max_batch, **case.options)

    head = {"method": case.label, "dtype": dtype}
    try:
        _, first = _timed(cnnlab, clock, bench.device, case.bf16)  # warm-up; it also tells the chunk
    except Exception as error:  # a failing method is reported, the others still run
        print(f"{tag}: cnnlab failed: {error}", file=sys.stderr)
        return [{**head, "error": f"cnnlab: {type(error).__name__}: {error}"}], {}
    chunk = int(first.options["max_batch"])
    cnnlab_options = dict(first.options)
    peers = case.peers(bench, chunk)
    for peer in peers:
        if peer.skipped:
            continue
        try:
            _peer_once(peer, clock, bench.device, case.bf16)  # warm-up
        except Exception as error:
            peer.error = f"{type(error).__name__}: {error}"
            print(f"{tag}: {peer.name} ({peer.settings}) failed: {peer.error}", file=sys.stderr)
    active = [p for p in peers if not p.skipped and not p.error]
    mine: list[float] = []
    last = first
    for round_ in range(repeats):  # interleaved: cnnlab and each peer setting in every round
        order: list[Peer | None] = [None, *active]
        for item in (order if round_ % 2 == 0 else order[::-1]):
            if item is None:
                seconds, last = _timed(cnnlab, clock, bench.device, case.bf16)
                mine.append(seconds)
            else:
                item.seconds.append(_peer_once(item, clock, bench.device, case.bf16))
    ours = _ips(bench.count, mine)
    check: dict[str, Any] = {}
    if case.method == "integrated_gradients" and case.options.get("rule") == "gauss_legendre":
        check = {"cnnlab": round(completeness(bench, last.maps, case.bf16), 6)}
        for peer in active:
            if peer.settings == "default" and peer.output is not None:
                check[peer.name] = round(completeness(bench, peer.output, case.bf16), 6)
        check = {"method": case.label, "dtype": dtype, "steps": bench.steps,
                 "median_relative_error": check}
    rows = []
    for peer in peers:
        row: dict[str, Any] = {**head, "peer": peer.name, "peer_settings": peer.settings,
                               "peer_options": peer.options, "cnnlab_options": cnnlab_options}
        if peer.skipped:
            rows.append({**row, "skipped": peer.skipped})
            continue
        if peer.error:
            rows.append({**row, "error": peer.error, "cnnlab_images_per_s": round(ours, 2)})
            continue
        theirs = _ips(bench.count, peer.seconds)
        target, why = target_of(case, peer, bench.device)
        ratio = ours / theirs
        rows.append({**row, "cnnlab_images_per_s": round(ours, 2), "peer_images_per_s": round(theirs, 2),
                     "ratio": round(ratio, 3), "target": target, "target_rule": why, "meets": ratio >= target})
        if check and peer.settings == "default":
            rows[-1]["cnnlab_completeness_error"] = check["median_relative_error"]["cnnlab"]
        print(f"{tag}: cnnlab {ours:.1f} img/s, {peer.name} ({peer.settings}) {theirs:.1f} img/s, "
              f"ratio {ratio:.2f} (target {target})", file=sys.stderr)
    return rows, check


# --- the command line ----------------------------------------------------------------------------


def calibrated(model: nn.Module, images: torch.Tensor) -> nn.Module:
    """Return `model` in eval mode with its BatchNorm statistics estimated from `images` (cumulative average).

    Untrained, with zero BN biases and running statistics (0, 1), a ReLU net is positively
    homogeneous: the gradient is constant along the ray from 0, so IG is exact at any step count
    and the completeness check says nothing. Statistics from data make the BN layers affine.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    with torch.no_grad():
        model(images)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    return model.eval()


def main() -> None:
    """Parse the command line, time every pair, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20", help="the zoo model (10 classes)")
    parser.add_argument("--layer", default=None, help="the CAM layer (default: the last of feature_layers())")
    parser.add_argument("--size", type=int, default=32, help="input height and width")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=None, help="IG steps (default 32; 4 with --quick)")
    parser.add_argument("--samples", type=int, default=None, help="SmoothGrad samples (default 16; 4 with --quick)")
    parser.add_argument("--max-batch", type=int, default=None, help="cnnlab's rows per chunk (default: its own choice)")
    parser.add_argument("--methods", default=None, help="comma-separated cnnlab methods to time (default: all)")
    parser.add_argument("--bf16", action="store_true", help="also time IG and SmoothGrad in bfloat16 autocast")
    parser.add_argument("--quick", action="store_true", help="smoke test: 4 images, 1 repeat, few steps")
    args = parser.parse_args()
    if args.quick:
        args.images, args.repeats = 4, 1
    device = torch.device(args.device)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.images, 3, args.size, args.size, generator=generator).to(device)
    statistics_batch = torch.randn(64, 3, args.size, args.size, generator=generator).to(device)
    model = calibrated(create_model(args.model, num_classes=10).to(device), statistics_batch)
    layer = args.layer or model.feature_layers()[-1]
    with torch.no_grad():
        targets = model(images).argmax(1)
    bench = Bench(model, images, targets, layer, device,
                  steps=args.steps or (4 if args.quick else 32), samples=args.samples or (4 if args.quick else 16),
                  noise=0.15, window=4, stride=4 if args.quick else 2, max_batch=args.max_batch)
    wanted = set(args.methods.split(",")) if args.methods else None
    clock = Clock(device)
    results, checks = [], []
    for case in cases(bench, args.bf16):
        if wanted and case.method not in wanted:
            continue
        began = time.perf_counter()
        rows, check = measure(bench, case, args.repeats, clock)
        print(f"  ({time.perf_counter() - began:.1f} s)", file=sys.stderr)
        results += rows
        if check:
            checks.append(check)
    timed = [r for r in results if "meets" in r]
    print(json.dumps({
        "benchmark": "explain_throughput",
        "cpu": cpu_name(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else device.type,
        "torch": torch.__version__,
        "captum": _version("captum"),
        "grad_cam": _version("grad-cam"),
        "model": args.model,
        "layer": layer,
        "images": args.images,
        "repeats": args.repeats,
        "quick": args.quick,
        "settings": {"ig_steps": bench.steps, "smoothgrad_samples": bench.samples, "noise": bench.noise,
                     "occlusion_window": bench.window, "occlusion_stride": bench.stride,
                     "max_batch": args.max_batch or "auto", "threads": torch.get_num_threads()},
        "results": results,
        "ig_completeness": checks,
        "all_met": bool(timed) and all(r["meets"] for r in timed) and not any("error" in r for r in results),
    }, indent=2))


if __name__ == "__main__":
    main()
