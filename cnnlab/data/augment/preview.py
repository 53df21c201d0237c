"""Parse an ops list from the command line, and draw several views of the same images under a policy."""

from __future__ import annotations

from typing import Any

import torch
import yaml

from cnnlab.data.augment.pipeline import Augmentation
from cnnlab.errors import CnnlabError


def parse_ops(text: str) -> list[Any]:
    """Return raw recipe ops from `flip,rotate:degrees=30,randaugment:n=1:magnitude=9` or a YAML list."""
    text = text.strip()
    if text.startswith("["):
        try:
            ops = yaml.safe_load(text)
        except yaml.YAMLError:
            raise CnnlabError(f"--policy {text!r} is not a YAML list: write [{{op: flip}}, {{op: rotate, degrees: 30}}]") from None
        return list(ops)
    ops: list[Any] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, *pairs = item.split(":")
        op: dict[str, Any] = {"op": name}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise CnnlabError(f"--policy op {item!r}: parameters look like {name}:key=value, e.g. rotate:degrees=30")
            op[key] = yaml.safe_load(value)
        ops.append(op)
    if not ops:
        raise CnnlabError("--policy names no op: give a recipe, or ops such as flip,rotate:degrees=30")
    return ops


def views(augmentation: Augmentation, images: torch.Tensor, labels: torch.Tensor, draws: int,
          seed: int = 0) -> torch.Tensor:
    """Return (N, 1 + draws, C, H, W) pixels in [0, 1]: each uint8 image, then `draws` augmented copies of it.

    Each draw augments the whole batch with its own seed, so an image's copies differ as they would
    in successive epochs. Ops that shrink images (center_crop) are shown padded back to size.
    """
    original = images.float() / 255
    columns = [original]
    for draw in range(draws):
        generator = torch.Generator(images.device).manual_seed(seed * 1_000_003 + draw)
        out, _ = augmentation.pixels(original, labels, generator)
        if out.shape[-2:] != original.shape[-2:]:
            dh, dw = original.shape[-2] - out.shape[-2], original.shape[-1] - out.shape[-1]
            out = torch.nn.functional.pad(out, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
        columns.append(out)
    return torch.stack(columns, 1)
