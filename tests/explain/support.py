"""Shared checks of the explain tests: the model comes back as it went in, with no hook left."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from cnnlab.explain import verify_no_hooks


@contextmanager
def unchanged(model: nn.Module) -> Iterator[nn.Module]:
    """Yield `model`; on exit assert modes, requires_grad flags, in-place flags and every tensor are as before, and no hook is left."""
    training = {n: m.training for n, m in model.named_modules()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    inplace = {n: m.inplace for n, m in model.named_modules() if hasattr(m, "inplace")}
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    yield model
    assert {n: m.training for n, m in model.named_modules()} == training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert {n: m.inplace for n, m in model.named_modules() if hasattr(m, "inplace")} == inplace
    after = model.state_dict()
    assert after.keys() == state.keys()
    for key, value in state.items():
        assert torch.equal(after[key], value), key  # bit for bit
    verify_no_hooks(model)


class TwoLayer(nn.Module):
    """f(x) = W2 relu(W1 flatten(x)): small enough to derive every method by hand."""

    def __init__(self, w1: torch.Tensor, w2: torch.Tensor) -> None:
        super().__init__()
        self.fc1 = nn.Linear(w1.shape[1], w1.shape[0], bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(w2.shape[1], w2.shape[0], bias=False)
        with torch.no_grad():
            self.fc1.weight.copy_(w1)
            self.fc2.weight.copy_(w2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(x.flatten(1))))


def randomise_batchnorm(model: nn.Module, shift: float = 0.2) -> nn.Module:
    """Draw every BatchNorm's statistics and affine terms away from the identity (so merging them is tested)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-shift, shift)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-shift, shift)
    return model.eval()


def seeded_resnet20(seed: int = 0) -> nn.Module:
    """Return a CIFAR ResNet-20 with non-trivial BatchNorm statistics and weights, in eval mode."""
    from cnnlab.models import create_model

    torch.manual_seed(seed)
    return randomise_batchnorm(create_model("resnet20", num_classes=10))
