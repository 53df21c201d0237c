"""cnnlab.devices: one place for the --device word and for where a module's tensors live."""

import pytest
import torch
from torch import nn

from cnnlab.devices import device_of, resolve
from cnnlab.errors import CnnlabError


def test_device_of_a_module_without_parameters_is_the_cpu() -> None:
    assert device_of(nn.ReLU()) == torch.device("cpu")  # next(model.parameters()) raised StopIteration here
    assert device_of(nn.BatchNorm2d(3).requires_grad_(False)) == torch.device("cpu")
    only_buffers = nn.Module()
    only_buffers.register_buffer("table", torch.zeros(2, dtype=torch.float64))
    assert device_of(only_buffers) == torch.device("cpu")
    assert device_of(nn.Linear(2, 2).to("meta")) == torch.device("meta")


def test_resolve_reads_the_environment_first(monkeypatch) -> None:
    monkeypatch.setenv("CNNLAB_DEVICE", "cpu")
    assert resolve("auto") == torch.device("cpu")
    assert resolve("cpu") == torch.device("cpu")
    monkeypatch.setenv("CNNLAB_DEVICE", "gpu")
    with pytest.raises(CnnlabError, match="CNNLAB_DEVICE 'gpu' is not a device"):
        resolve("auto")
