"""Shared checks for zoo tests: initialisation, logit equivalence, stage outputs, the model contract."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.models.base import AuxOutput
from cnnlab.models.transfer import load_torchvision_state_dict

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


@torch.no_grad()
def nontrivial_init(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-initialise every parameter and buffer so a broken port cannot pass by accident.

    Weights N(0, 1/fan_in), norm weights U(0.5, 1.5), biases and running means N(0, 0.1),
    running variances U(0.5, 2); any other parameter (layer scale...) U(0.5, 1.5).
    """
    generator = torch.Generator().manual_seed(seed)

    def fill(tensor: torch.Tensor, values: torch.Tensor) -> None:
        tensor.copy_(values.to(tensor.dtype))

    done: set[int] = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in done:
                continue
            done.add(id(param))
            shape = param.shape
            if isinstance(module, _NORMS) and name == "weight":
                fill(param, torch.rand(shape, generator=generator) + 0.5)
            elif name == "bias" or (isinstance(module, _NORMS) and name != "weight"):
                fill(param, torch.randn(shape, generator=generator) * 0.1)
            elif param.ndim > 1:
                fan_in = param[0].numel()
                fill(param, torch.randn(shape, generator=generator) / fan_in**0.5)
            else:
                fill(param, torch.rand(shape, generator=generator) + 0.5)
        for name, buffer in module.named_buffers(recurse=False):
            if name == "running_mean":
                fill(buffer, torch.randn(buffer.shape, generator=generator) * 0.1)
            elif name == "running_var":
                fill(buffer, torch.rand(buffer.shape, generator=generator) * 1.5 + 0.5)
    return model


def assert_equivalent(
    ours: nn.Module,
    theirs: nn.Module,
    input_size: tuple[int, ...] = (3, 64, 64),
    *,
    batch: int = 2,
    transform_input: bool | None = None,
) -> None:
    """Transfer `theirs` (torchvision) into `ours` and require equal eval-mode logits."""
    nontrivial_init(theirs)
    theirs.eval()
    ours.eval()
    x = torch.randn((batch, *input_size), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = theirs(x)
        assert expected.std().item() > 0.1, "logits too flat to tell a broken port from a good one"
        load_torchvision_state_dict(ours, theirs.state_dict(), transform_input=transform_input)
        got = ours(x)
    scale = expected.abs().max().item()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * scale)


def stage_outputs(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor | AuxOutput, dict[str, torch.Tensor]]:
    """Return model(x) and each feature_layers() output in run order, removing every hook after."""
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: outputs.__setitem__(name, o))
        for name in model.feature_layers()
    ]
    try:
        out = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return out, outputs


def check_contract(model: nn.Module, x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Check train step, forward_features/forward_head, stage names and reset_classifier; return eval features."""
    batch = x.shape[0]
    model.train()
    out = model(x)
    logits = out.logits if isinstance(out, AuxOutput) else out
    assert logits.shape == (batch, num_classes)
    loss = logits.square().mean()
    if isinstance(out, AuxOutput):
        loss = loss + sum(aux.square().mean() for aux in out.aux)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.ndim == 4
        torch.testing.assert_close(model.forward_head(features), model(x))
    for stage in model.feature_layers():
        model.get_submodule(stage)
    model.reset_classifier(7)
    with torch.no_grad():
        assert model(x).shape == (batch, 7)
    return features
