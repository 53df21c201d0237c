"""Training and inference images/s of cnnlab's zoo models against timm's, interleaved, as JSON.

    python benchmarks/throughput.py [--models resnet18,resnet50,...] [--modes eager,compiled] [--windows 5]

Setting (the speed issue's): batch 256, 224 px, bf16 autocast, channels_last, synthetic data,
SGD with momentum (fused on a GPU) for both sides. Each window times `--steps` steps with CUDA
events; cnnlab and timm windows alternate, so drift in clocks or temperature hits both alike,
and the result is the median over windows of the per-window ratio cnnlab/timm. Model FLOP
utilisation is achieved training FLOP/s (3 x forward, 2 FLOPs per MAC from cnnlab's summary)
over a bf16 peak (--peak-tflops; default 790, the speed issue's figure, so numbers compare with
its 18 % for timm's compiled ResNet-50; NVIDIA's datasheet gives 989 dense for an H100 SXM;
the JSON names the peak used). compiled mode is measured
for resnet50 and convnext_tiny only unless --compile-all.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.inspect.summary import summary
from cnnlab.models import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Clock  # noqa: E402 - the benchmarks' one clock (CUDA events on a GPU)

TIMM_NAMES = {
    "resnet18": "resnet18",
    "resnet50": "resnet50",
    "vgg16": "vgg16",
    "mobilenet_v2": "mobilenetv2_100",
    "efficientnet_b0": "efficientnet_b0",
    "convnext_tiny": "convnext_tiny",
    "densenet121": "densenet121",
}
COMPILED = ("resnet50", "convnext_tiny")
# timm builds with no dropout and no stochastic depth by default; cnnlab's models carry their
# papers' rates. timm gets the same ones, so both sides do the same work in training.
TIMM_REGULARISATION = {
    "vgg16": {"drop_rate": 0.5},
    "mobilenet_v2": {"drop_rate": 0.2},
    "efficientnet_b0": {"drop_rate": 0.2, "drop_path_rate": 0.2},
    "convnext_tiny": {"drop_path_rate": 0.1},
}


def _steps(model: nn.Module, batch: int, size: int, device: torch.device, dtype: torch.dtype | None,
           compiled: bool) -> tuple[Callable[[int], None], Callable[[int], None]]:
    """Return (train(n), infer(n)) closures running n steps of `model` on synthetic data."""
    model = model.to(device).to(memory_format=torch.channels_last)
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, **({"fused": True} if device.type == "cuda" else {}))
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device=device)

    def autocast() -> torch.autocast:
        return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def train(n: int) -> None:
        model.train()
        for _ in range(n):
            with autocast():
                loss = F.cross_entropy(forward(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    def infer(n: int) -> None:
        model.eval()
        with torch.inference_mode(), autocast():
            for _ in range(n):
                forward(x)

    return train, infer


def measure(name: str, mode: str, args: argparse.Namespace, device: torch.device) -> dict:
    """Return images/s of cnnlab's and timm's `name` in `mode`, window by window, and their median ratios."""
    import timm

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.dtype)
    compiled = mode == "compiled"
    ours = _steps(create_model(name), args.batch, args.size, device, dtype, compiled)
    reference = timm.create_model(TIMM_NAMES[name], pretrained=False, **TIMM_REGULARISATION.get(name, {}))
    theirs = _steps(reference, args.batch, args.size, device, dtype, compiled)
    clock = Clock(device)
    result: dict = {"model": name, "timm_model": TIMM_NAMES[name], "mode": mode}
    for phase, index in (("train", 0), ("infer", 1)):
        for side in (ours, theirs):  # warm-up: compilation, cuDNN autotuning, allocator
            side[index](args.warmup)
        rates: dict[str, list[float]] = {"cnnlab": [], "timm": []}
        for window in range(args.windows):
            order = (("cnnlab", ours), ("timm", theirs))
            for label, side in order if window % 2 == 0 else order[::-1]:  # neither side always goes first
                clock.start()
                side[index](args.steps)
                seconds = clock.seconds()
                rates[label].append(args.steps * args.batch / seconds)
        ratios = [a / b for a, b in zip(rates["cnnlab"], rates["timm"], strict=True)]
        result[f"{phase}_cnnlab_img_s"] = statistics.median(rates["cnnlab"])
        result[f"{phase}_timm_img_s"] = statistics.median(rates["timm"])
        result[f"{phase}_ratio"] = statistics.median(ratios)
    macs = summary(name, (3, args.size, args.size)).total_macs
    result["gmacs_per_image"] = macs / 1e9
    # Training does about three forward passes of work: forward, and backward for inputs and weights.
    result["train_mfu"] = result["train_cnnlab_img_s"] * 6 * macs / (args.peak_tflops * 1e12)
    return result


def main() -> None:
    """Parse the command line, measure every model and mode, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(TIMM_NAMES))
    parser.add_argument("--modes", default="eager,compiled")
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed window")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before the windows")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak-tflops", type=float, default=790.0,
                        help="bf16 peak for the MFU (790: the speed issue's H100 figure; datasheet SXM dense: 989)")
    parser.add_argument("--compile-all", action="store_true", help="also compile models other than resnet50 and convnext_tiny")
    args = parser.parse_args()
    import timm

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    results = []
    for name in args.models.split(","):
        if name not in TIMM_NAMES:
            parser.error(f"unknown model {name}: use some of {', '.join(TIMM_NAMES)}")
        for mode in args.modes.split(","):
            if mode == "compiled" and name not in COMPILED and not args.compile_all:
                continue
            results.append(measure(name, mode, args, device))
    print(json.dumps({
        "benchmark": "throughput",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "timm": timm.__version__,
        "batch": args.batch,
        "size": args.size,
        "dtype": args.dtype,
        "mfu_peak_tflops": args.peak_tflops,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
