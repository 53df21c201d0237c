"""The memory budget: how many rows of a forward+backward fit in a fraction of the free memory."""

from __future__ import annotations

import os
import weakref

import torch

from cnnlab.explain.kit.types import Forward


def _free_bytes(device: torch.device) -> int:
    """Return the bytes this process may still use on `device` (CUDA: free memory; CPU: available RAM)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def bytes_per_image(forward: Forward, image: torch.Tensor) -> int:
    """Return the bytes one image keeps for backward (the tensors autograd saves), plus its logits."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    x = image[:1].detach().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward(x)
    del out
    return max(total, image[:1].numel() * image.element_size())


_PER_IMAGE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cached_bytes_per_image(forward: Forward, image: torch.Tensor) -> int:
    """Return bytes_per_image, remembered per model, input shape and dtype (a probe is a batch-1 forward)."""
    owner = getattr(forward, "__self__", forward)
    key = (tuple(image.shape[1:]), image.dtype, image.device.type)
    try:
        known = _PER_IMAGE.setdefault(owner, {})
    except TypeError:  # not weak-referenceable: probe every time
        return bytes_per_image(forward, image)
    if key not in known:
        known[key] = bytes_per_image(forward, image)
    return known[key]


def auto_max_batch(forward: Forward, image: torch.Tensor, fraction: float = 0.25, cap: int = 512) -> int:
    """Return the rows per chunk that keep one forward+backward within `fraction` of the free memory."""
    per_image = _cached_bytes_per_image(forward, image)
    # Backward allocates about as much again as the forward saved; 2x is the margin for it.
    fit = int(_free_bytes(image.device) * fraction // (2 * per_image))
    return max(1, min(cap, fit))

