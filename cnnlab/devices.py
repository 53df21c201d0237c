"""Devices: the one place a `--device` word becomes a torch.device, where a module's tensors live, and what the CPU is.

`auto` is the environment's CNNLAB_DEVICE when set (the test suite sets cpu, so that its figures are
the CPU's on a GPU machine too), else CUDA when available. Under torchrun each process takes
cuda:LOCAL_RANK (or the CPU with gloo). The CPU's model and bf16 support are read from Linux's
/proc/cpuinfo.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from cnnlab.errors import CnnlabError


def resolve(device: str = "auto") -> torch.device:
    """Return this process's device for a `--device` word, without joining a process group."""
    source = "--device"
    if device == "auto" and os.environ.get("CNNLAB_DEVICE", "auto") != "auto":
        device, source = os.environ["CNNLAB_DEVICE"], "CNNLAB_DEVICE"
    if device != "auto":
        try:
            kind = torch.device(device).type
        except RuntimeError:
            raise CnnlabError(f"{source} {device!r} is not a device: use auto, cpu, cuda or cuda:N") from None
        if kind == "cuda" and not torch.cuda.is_available():
            raise CnnlabError(f"{source} {device} but this machine has no CUDA GPU: use cpu (or auto)")
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return torch.device(("cuda" if use_cuda else "cpu") if device == "auto" else device)
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if use_cuda else torch.device("cpu")


def device_of(module: nn.Module) -> torch.device:
    """Return the device of a module's first parameter, else its first buffer, else the CPU (a module with no tensors)."""
    for tensors in (module.parameters(), module.buffers()):
        for tensor in tensors:
            return tensor.device
    return torch.device("cpu")


def _cpuinfo(key: str) -> str | None:
    """Return the value of the first /proc/cpuinfo line named `key`, "" when none is, None off Linux."""
    try:
        with open("/proc/cpuinfo") as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.startswith(key) and ":" in line), "")
    except OSError:
        return None


def cpu_has_bf16() -> bool:
    """Return whether this CPU computes bfloat16 natively (Linux's avx512_bf16 or amx_bf16 flags)."""
    flags = _cpuinfo("flags")
    if flags is None:
        return True  # not Linux: no way to tell, so no warning
    return "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()


def cpu_name() -> str:
    """Return the CPU's model name as /proc/cpuinfo gives it, else the platform's processor string ("" when unknown)."""
    import platform

    return _cpuinfo("model name") or platform.processor()


def device_description(device: torch.device) -> str:
    """Return the device in words: the GPU's name, or the CPU's model name and core count."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({cpu_name() or 'unknown model'}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
