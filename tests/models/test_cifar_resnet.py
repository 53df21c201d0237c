"""CIFAR ResNets: parameter counts by hand and from the DESIGN table, option A's zero padding, shapes."""

import pytest
import torch
from torch import nn

from cnnlab.inspect import summary
from cnnlab.models.cifar_resnet import (
    PreActBlock,
    ZeroPadShortcut,
    preact_resnet18,
    preact_resnet164,
    resnet20,
    resnet32,
    resnet44,
    resnet56,
    resnet110,
    wrn28_10,
)
from cnnlab.models.registry import model_info
from tests.models.helpers import check_contract, stage_outputs

HE = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}  # n of 6n + 2
BUILDERS = {
    b.__name__: b
    for b in (resnet20, resnet32, resnet44, resnet56, resnet110, preact_resnet18, preact_resnet164, wrn28_10)
}


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _build_on_meta(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return BUILDERS[name](**kwargs)


def _conv_bn(c_in: int, c_out: int, k: int = 3) -> int:
    """Bias-free k x k conv + BN (2 params per channel)."""
    return k * k * c_in * c_out + 2 * c_out


def _he_count(n: int, option: str) -> int:
    """Stem, 3 stages of n basic blocks (two 3x3 conv + BN) at 16/32/64, linear 64 -> 10."""
    total = _conv_bn(3, 16)
    previous = 16
    for width in (16, 32, 64):
        total += _conv_bn(previous, width) + _conv_bn(width, width)  # first block (maybe stride 2)
        total += (n - 1) * 2 * _conv_bn(width, width)
        if option == "B" and previous != width:
            total += _conv_bn(previous, width, k=1)  # projection only where the shape changes
        previous = width
    return total + 64 * 10 + 10


def _preact_basic_count(stem: int, widths: tuple[int, ...], depth: int) -> int:
    """3x3 stem conv; blocks BN, conv3x3, BN, conv3x3 (+ 1x1 conv where shape changes); BN; linear."""
    total = 9 * 3 * stem
    previous = stem
    for width in widths:
        for _ in range(depth):
            total += 2 * previous + 9 * previous * width + 2 * width + 9 * width * width
            total += previous * width if previous != width else 0
            previous = width
    return total + 2 * previous + previous * 10 + 10


def _preact_bottleneck_count(n: int) -> int:
    """ResNet-164: blocks BN, 1x1 (C -> p), BN, 3x3 (p -> p), BN, 1x1 (p -> 4p), projections 1x1."""
    total = 9 * 3 * 16
    previous = 16
    for p in (16, 32, 64):
        for _ in range(n):
            total += 2 * previous + previous * p + 2 * p + 9 * p * p + 2 * p + p * 4 * p
            total += previous * 4 * p if previous != 4 * p else 0
            previous = 4 * p
    return total + 2 * 256 + 256 * 10 + 10


@pytest.mark.parametrize("name", HE)
@pytest.mark.parametrize("option", ["A", "B"])
def test_he_cifar_counts_by_hand(name: str, option: str) -> None:
    model = _build_on_meta(name, shortcut=option)
    assert _count(model) == _he_count(HE[name], option)
    # 6n + 2 weighted layers: convs and the linear, option B's projections aside.
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 6 * HE[name] + 2 + (2 if option == "B" else 0)


def test_he_cifar_counts_match_design_table_and_paper() -> None:
    assert _count(_build_on_meta("resnet20")) == 269_722  # DESIGN table, option A
    # He et al. 2016a, Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M.
    paper = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85}
    for name, millions in paper.items():
        assert round(_count(_build_on_meta(name)) / 1e6, 2) == millions
    assert round(_count(_build_on_meta("resnet110")) / 1e6, 1) == 1.7


def test_resnet20_macs_by_hand() -> None:
    # Every 3x3 conv of stage s costs (32 / 2^s)^2 * 9 * C_in * C_out; each stage sums to 2.36 M
    # per conv-equivalent, the classic "41 M FLOPs" of ResNet-20 (MACs, in fact).
    per_conv = 32 * 32 * 9 * 16 * 16  # 2,359,296: same for every stage (H W halves, C doubles)
    stem = 32 * 32 * 9 * 3 * 16
    first_of_stage = per_conv // 2  # the stride-2 conv of stages 2 and 3 has C_in = C_out / 2
    expected = stem + 6 * per_conv + 2 * (first_of_stage + 5 * per_conv) + 64 * 10
    assert summary(resnet20(), (3, 32, 32)).total_macs == expected == 40_551_040


def test_wrn28_10_matches_design_table_and_hand_count() -> None:
    model = _build_on_meta("wrn28_10")
    assert _count(model) == _preact_basic_count(16, (160, 320, 640), 4) == 36_479_194
    assert round(_count(model) / 1e6, 1) == 36.5  # Zagoruyko & Komodakis, Table 5


def test_preact_counts_by_hand() -> None:
    assert _count(_build_on_meta("preact_resnet18")) == _preact_basic_count(64, (64, 128, 256, 512), 2)
    count = _count(_build_on_meta("preact_resnet164"))
    assert count == _preact_bottleneck_count(18) == 1_703_258
    assert round(count / 1e6, 1) == 1.7  # He et al. 2016b, Table 2
    # 164 = 3 stages x 18 blocks x 3 convs + stem + linear (the 3 projections not counted).
    model = _build_on_meta("preact_resnet164")
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    projections = [name for name in convs if name.endswith("shortcut")]
    assert len(projections) == 3 and len(convs) - len(projections) + 1 == 164


def test_option_a_pads_with_exact_zeros() -> None:
    shortcut = ZeroPadShortcut(16, 32, stride=2)
    assert not list(shortcut.parameters())
    x = torch.randn(2, 16, 8, 8)
    out = shortcut(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, :16], x[:, :, ::2, ::2])
    assert torch.equal(out[:, 16:], torch.zeros(2, 16, 4, 4))


def test_option_a_inside_resnet20() -> None:
    model = resnet20().eval()
    seen = []
    hooks = []
    for stage in ("stages.layer2", "stages.layer3"):
        block = model.get_submodule(stage)[0]
        assert isinstance(block.shortcut, ZeroPadShortcut)
        hooks.append(block.shortcut.register_forward_hook(lambda m, i, o: seen.append((i[0], o))))
    try:
        with torch.no_grad():
            model(torch.randn(2, 3, 32, 32))
    finally:
        for hook in hooks:
            hook.remove()
    assert len(seen) == 2
    for inputs, out in seen:
        c = inputs.shape[1]
        assert out.shape[1] == 2 * c and torch.equal(out[:, :c], inputs[:, :, ::2, ::2])
        assert torch.count_nonzero(out[:, c:]) == 0


def test_preact_projection_sees_the_preactivated_input() -> None:
    block = PreActBlock(16, 64, stride=2, bottleneck=True).eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        activated = block.act(block.norm(x))
        expected = block.residual(activated) + block.shortcut(activated)
        torch.testing.assert_close(block(x), expected)


@pytest.mark.parametrize("name", BUILDERS)
def test_forward_backward_and_contract(name: str) -> None:
    torch.manual_seed(0)
    model = BUILDERS[name](num_classes=5)
    x = torch.randn(2, 3, 16, 16)  # 16 / 2^3 = 2 for the four-stage PreAct ResNet-18
    features = check_contract(model, x, 5)
    assert features.shape[:2] == (2, model.num_features)
    info = model_info(name)
    assert info.small_input and info.default_classes == 10 and info.input_size == (3, 32, 32)


def test_resnet20_stage_shapes() -> None:
    model = resnet20().eval()
    with torch.no_grad():
        _, maps = stage_outputs(model, torch.randn(1, 3, 32, 32))
    assert [tuple(m.shape[1:]) for m in maps.values()] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]


def test_wrn_dropout_and_bad_option() -> None:
    with torch.device("meta"):
        rates = {m.p for m in wrn28_10(drop_rate=0.3).modules() if isinstance(m, nn.Dropout)}
    assert rates == {0.3}
    with pytest.raises(ValueError):
        resnet20(shortcut="C")


def test_plain_networks_are_the_resnets_without_their_shortcuts() -> None:
    from cnnlab.models import create_model

    for depth in (20, 56):
        torch.manual_seed(0)
        residual, plain = create_model(f"resnet{depth}").eval(), create_model(f"plain{depth}").eval()
        plain.load_state_dict(residual.state_dict())  # the same layers: option A shortcuts have no weights
        block = plain.stages.layer2[0]
        x = torch.randn(2, 16, 32, 32)
        with torch.no_grad():
            assert block.shortcut is None
            assert torch.equal(block(x), block.act(block.conv2(block.conv1(x))))  # no sum: relu(F(x))
            image = torch.randn(2, 3, 32, 32)
            assert not torch.allclose(plain(image), residual(image))
