"""AlexNet (torchvision's and the 2012 original) and ZFNet: counts, shapes, equivalence, MACs."""

import pytest
import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.inspect import summary
from cnnlab.models import model_info
from cnnlab.models.alexnet import alexnet, alexnet_2012, local_response_norm, zfnet
from tests.models.helpers import assert_equivalent, check_contract


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _conv(out_c: int, in_c: int, k: int, groups: int = 1) -> int:
    return out_c * (in_c // groups) * k * k + out_c


def _fc(out_f: int, in_f: int) -> int:
    return out_f * in_f + out_f


def _feature_sizes(model: nn.Module, side: int) -> dict[str, int]:
    """Return the spatial side after every layer of model.features, on meta."""
    x = torch.zeros(1, 3, side, side, device="meta")
    sizes = {}
    for name, layer in model.features.named_children():
        x = layer(x)
        sizes[name] = x.shape[-1]
    return sizes


def test_alexnet_matches_torchvision_count() -> None:
    with torch.device("meta"):
        ours, theirs = alexnet(), torchvision.models.alexnet()
    assert _params(ours) == _params(theirs) == 61_100_840
    assert model_info("alexnet").torchvision == "alexnet"


def test_alexnet_equivalent_to_torchvision() -> None:
    assert_equivalent(alexnet(num_classes=10), torchvision.models.alexnet(num_classes=10), (3, 64, 64))


def test_alexnet_macs_equal_flop_counter() -> None:
    with torch.device("meta"):
        theirs = torchvision.models.alexnet().eval()
    with FlopCounterMode(display=False) as counter:
        theirs(torch.zeros(1, 3, 224, 224, device="meta"))
    macs = summary("alexnet", (3, 224, 224)).total_macs
    assert 2 * macs == counter.get_total_flops()
    assert round(macs / 1e9, 3) == 0.714  # DESIGN table


def test_alexnet_2012_count_and_groups() -> None:
    with torch.device("meta"):
        model = alexnet_2012()
        without_lrn = alexnet_2012(lrn=False)
    by_hand = (
        _conv(96, 3, 11)  # conv1: 48 kernels per GPU, each over all 3 channels
        + _conv(256, 96, 5, groups=2)
        + _conv(384, 256, 3)  # conv3 reads both GPUs
        + _conv(384, 384, 3, groups=2)
        + _conv(256, 384, 3, groups=2)
        + _fc(4096, 256 * 6 * 6)
        + _fc(4096, 4096)
        + _fc(1000, 4096)
    )
    assert _params(model) == _params(without_lrn) == by_hand == 60_965_224  # DESIGN table
    groups = [model.get_submodule(f"features.conv{i}.conv").groups for i in range(1, 6)]
    assert groups == [1, 2, 1, 2, 2]
    assert [n for n, m in model.features.named_children() if isinstance(m, nn.LocalResponseNorm)] == ["norm1", "norm2"]
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in without_lrn.modules())
    assert model_info("alexnet_2012").input_size == (3, 227, 227)


def test_alexnet_2012_sizes_at_227() -> None:
    with torch.device("meta"):
        sizes = _feature_sizes(alexnet_2012(), 227)
    # Fig. 2: 55 after conv1, 27 after the first pool, 13 after the second, 6 after the last.
    assert sizes == {
        "conv1": 55, "norm1": 55, "pool1": 27, "conv2": 27, "norm2": 27, "pool2": 13,
        "conv3": 13, "conv4": 13, "conv5": 13, "pool5": 6,
    }  # fmt: skip


def test_local_response_norm_is_the_papers_equation() -> None:
    torch.manual_seed(0)
    a = torch.randn(2, 12, 3, 3) * 20
    k, n, alpha, beta = 2.0, 5, 1e-4, 0.75
    squares = a.square()
    expected = torch.empty_like(a)
    for i in range(a.shape[1]):  # b_i = a_i / (k + alpha sum_{j = i - n/2}^{i + n/2} a_j^2)^beta
        lo, hi = max(0, i - n // 2), min(a.shape[1] - 1, i + n // 2)
        expected[:, i] = a[:, i] / (k + alpha * squares[:, lo : hi + 1].sum(dim=1)) ** beta
    torch.testing.assert_close(local_response_norm()(a), expected)


def test_zfnet_count_and_sizes() -> None:
    with torch.device("meta"):
        model = zfnet()
    # Zeiler & Fergus Fig. 3: 96@7x7/2, 256@5x5/2, 384@3x3, 384@3x3, 256@3x3, 4096, 4096, 1000.
    by_hand = (
        _conv(96, 3, 7)
        + _conv(256, 96, 5)
        + _conv(384, 256, 3)
        + _conv(384, 384, 3)
        + _conv(256, 384, 3)
        + _fc(4096, 256 * 6 * 6)
        + _fc(4096, 4096)
        + _fc(1000, 4096)
    )
    assert _params(model) == by_hand == 62_357_608
    with torch.device("meta"):
        sizes = _feature_sizes(model, 224)
    assert [sizes[n] for n in ("conv1", "pool1", "conv2", "pool2", "conv5", "pool5")] == [110, 55, 26, 13, 13, 6]
    assert list(model.features.named_children())[1][0] == "pool1"  # Fig. 3 pools, then normalises
    assert list(model.features.named_children())[2][0] == "norm1"


@pytest.mark.parametrize("name, builder", [("alexnet", alexnet), ("alexnet_2012", alexnet_2012), ("zfnet", zfnet)])
def test_forward_backward_and_contract(name: str, builder) -> None:
    torch.manual_seed(0)
    side = model_info(name).min_train_size
    model = builder(num_classes=5)
    features = check_contract(model, torch.randn(2, 3, side, side), 5)
    assert features.shape[1] == model.num_features == 256
    assert len(model.feature_layers()) == 5
    with pytest.raises(RuntimeError):  # one pixel less and the last pool has nothing to pool
        model(torch.randn(1, 3, side - 1, side - 1))
