"""Squeeze-and-Excitation against torchvision's implementation and the paper's count."""

import torch
from torchvision.ops import SqueezeExcitation as TorchvisionSE

from cnnlab.nn import SqueezeExcitation


def test_parameter_count_matches_the_paper() -> None:
    channels, reduction = 256, 16
    block = SqueezeExcitation(channels, reduction)
    reduced = channels // reduction
    assert sum(p.numel() for p in block.parameters()) == 2 * channels * reduced + reduced + channels


def test_output_equals_torchvision_with_the_same_weights() -> None:
    torch.manual_seed(0)
    ours = SqueezeExcitation(32, reduced_channels=8)
    theirs = TorchvisionSE(32, 8)
    theirs.load_state_dict(ours.state_dict())  # same names: fc1, fc2
    x = torch.randn(2, 32, 7, 7)
    torch.testing.assert_close(ours(x), theirs(x))
