"""Whether `cnnlab summary` counts MACs exactly: against FlopCounterMode and torchvision's `_ops`.

For every torchvision classifier at its weights' crop size (and, with timm installed, a set of
timm models at 224), the summary's total MACs are compared with PyTorch's own FLOP counter run
on a plain meta-device forward (2 FLOPs per MAC), and with the GMACs torchvision publishes with
its weights (its "GFLOPS", rounded to three decimals). Prints JSON: one entry per model and the
count of exact agreements.

    python benchmarks/macs_agreement.py     # about two minutes on 2 cores
"""

from __future__ import annotations

import json
import warnings

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.errors import CnnlabError
from cnnlab.inspect.summary import summary

TIMM = ["resnet50", "convnext_tiny", "efficientnet_b0", "vit_small_patch16_224", "regnetx_002",
        "mobilenetv3_large_100", "cspdarknet53", "dla34", "hrnet_w18_small", "xception41", "inception_v3",
        "densenet121", "deit_tiny_patch16_224", "levit_128", "ghostnet_100", "rexnet_100", "resnest14d",
        "selecsls42b", "dpn68", "mixnet_s", "tf_efficientnetv2_b0", "coat_lite_tiny", "poolformer_s12",
        "mobilevit_xs"]


def _flop_counter_macs(build, size: int) -> int:  # noqa: ANN001
    """Return FlopCounterMode's FLOPs / 2 for one forward of the model on the meta device."""
    try:
        with torch.device("meta"):
            model = build().eval()
    except Exception:  # noqa: BLE001 - a constructor that reads tensor values: build, then move
        model = build().eval().to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size, device="meta"))
    return counter.get_total_flops() // 2


def main() -> None:
    """Print the JSON of the comparison."""
    warnings.simplefilter("ignore")
    models = []
    for name in torchvision.models.list_models(module=torchvision.models):
        weights = next(iter(torchvision.models.get_model_weights(name)))
        size = weights.transforms().crop_size[0]
        entry = {"model": f"tv/{name}", "input": size, "published_gmacs": weights.meta["_ops"]}
        try:
            ours = summary(f"tv/{name}", (3, size, size)).total_macs
        except CnnlabError as error:
            entry["error"] = str(error)
            models.append(entry)
            continue
        entry["macs"] = ours
        entry["flop_counter_macs"] = _flop_counter_macs(lambda n=name: torchvision.models.get_model(n), size)
        entry["equal_flop_counter"] = ours == entry["flop_counter_macs"]
        entry["equal_published"] = round(ours / 1e9, 3) == round(weights.meta["_ops"], 3)
        models.append(entry)
    try:
        import timm
    except ImportError:
        timm = None
    for name in TIMM if timm else []:
        ours = summary(f"timm/{name}", (3, 224, 224)).total_macs
        theirs = _flop_counter_macs(lambda n=name: timm.create_model(n, pretrained=False), 224)
        models.append({"model": f"timm/{name}", "input": 224, "macs": ours, "flop_counter_macs": theirs,
                       "equal_flop_counter": ours == theirs})
    counted = [m for m in models if "macs" in m]
    print(json.dumps({
        "benchmark": "macs_agreement",
        "models": len(models),
        "counted": len(counted),
        "equal_flop_counter": sum(m["equal_flop_counter"] for m in counted),
        "equal_published": sum(m.get("equal_published", False) for m in counted),
        "with_published": sum("equal_published" in m for m in counted),
        "not_counted": [{"model": m["model"], "error": m["error"]} for m in models if "error" in m],
        "mismatches": [m for m in counted if not m["equal_flop_counter"] or m.get("equal_published") is False],
        "per_model": models,
    }, indent=1))


if __name__ == "__main__":
    main()
