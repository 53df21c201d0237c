"""Receptive fields carried op by op: the issue's defects, and the gradient-support oracle.

Every case compares the tracer's field with an independent oracle (tests/inspect/support_oracle:
the support of d centre unit / d input in a linearised float64 copy), run on real tensors.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.inspect.summary import LayerRow, Summary, summary
from tests.inspect.support_oracle import analytic_span, fits, gradient_support


def spatial_rows(result: Summary, *, limit: int | None = None) -> list[LayerRow]:
    """Rows with a known field on a (C, H, W) map (not global), at most `limit`, evenly spread, last kept."""
    calls = Counter(r.name for r in result.layers)
    rows = [r for r in result.layers if r.receptive_field and len(r.output_shape) == 3
            and not r.receptive_field_global and r.type != "Linear"  # Linear: a channels-last map
            and calls[r.name] == 1]  # a module called twice (ResNet's relu): the oracle's hook sees the first
    if limit is not None and len(rows) > limit:
        step = (len(rows) - 1) / (limit - 1)
        rows = [rows[round(i * step)] for i in range(limit)]
    return rows


def assert_oracle_agrees(model: nn.Module, input_size: tuple[int, ...], *, limit: int | None = None) -> list[LayerRow]:
    """Check every chosen row's centre-unit span against the gradient support; return the rows."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = summary(model, input_size)
    rows = spatial_rows(result, limit=limit)
    assert rows, "no spatial layer with a field"
    for row in rows:  # a clipped span could hide an oversized field
        assert fits(row, input_size), f"input too small: {row.name}'s field {row.receptive_field} is clipped"
    module_name = {r.name: "" if r.name == result.model else r.name for r in rows}  # the root row
    support = gradient_support(model, input_size, sorted(set(module_name.values())))
    for row in rows:
        assert analytic_span(row, input_size) == support[module_name[row.name]], (row.name, row.receptive_field, row.start)
    # The user's model: unchanged, no hook left.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    return rows


# --- toys, one per defect -------------------------------------------------------------------


class AsymmetricBranches(nn.Module):
    """A 1x3 and a 3x1 convolution concatenated (Inception v3's Mixed_7b/7c pattern)."""

    def __init__(self) -> None:
        super().__init__()
        self.wide = nn.Conv2d(2, 2, (1, 3), padding=(0, 1))
        self.tall = nn.Conv2d(2, 2, (3, 1), padding=(1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.wide(x), self.tall(x)], dim=1)


def test_concatenated_1x3_and_3x1_see_3x3() -> None:
    result = summary(AsymmetricBranches(), (2, 9, 9))
    assert result.output_receptive_field == (3, 3)
    assert_oracle_agrees(AsymmetricBranches(), (2, 9, 9))


def test_residual_add_of_uneven_branches_takes_the_largest_extent_per_axis() -> None:
    class Sum(AsymmetricBranches):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.wide(x) + self.tall(x)

    assert summary(Sum(), (2, 9, 9)).output_receptive_field == (3, 3)
    assert_oracle_agrees(Sum(), (2, 9, 9))


class ChunkSplit(nn.Module):
    """Channels chunked in two (one half convolved again), then a split with uneven sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        self.worked_on = nn.Conv2d(2, 2, 3, padding=1)
        self.third = nn.Conv2d(1, 1, 5, padding=2)
        self.head = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        kept, worked = x.chunk(2, dim=1)
        x = torch.cat([kept, self.worked_on(worked)], dim=1)
        a, b = torch.split(x, [3, 1], dim=1)
        return self.head(torch.cat([a, self.third(b)], dim=1))


def test_field_survives_chunk_and_split() -> None:
    result = summary(ChunkSplit(), (2, 16, 16))
    assert result.output_receptive_field == (9, 9)  # 3, then 3 on one half, then 5 on one channel
    assert_oracle_agrees(ChunkSplit(), (2, 16, 16))


class Shuffle(nn.Module):
    """ShuffleNet's channel shuffle between two convolutions: reshape, transpose, reshape."""

    def __init__(self, groups: int = 2) -> None:
        super().__init__()
        self.groups = groups
        self.a = nn.Conv2d(2, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1, groups=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(x)
        b, c, h, w = x.shape
        x = x.view(b, self.groups, c // self.groups, h, w)  # (B, g, C/g, H, W)
        x = x.transpose(1, 2).contiguous().view(b, c, h, w)  # (B, C, H, W), channels interleaved
        return self.b(x)


def test_field_survives_a_channel_shuffle() -> None:
    assert summary(Shuffle(), (2, 12, 12)).output_receptive_field == (5, 5)
    assert_oracle_agrees(Shuffle(), (2, 12, 12))


def test_shufflenet_stage4_has_field_527() -> None:
    rows = {r.name: r for r in summary("tv/shufflenet_v2_x1_0", (3, 224, 224)).layers}
    last = [r for name, r in rows.items() if name.startswith("model.stage4.")][-1]
    assert last.receptive_field == (527, 527)


class PermutedBlock(nn.Module):
    """A ConvNeXt-style block: depth-wise 7x7, Linear layers on channels-last, a shortcut."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.up = nn.Linear(channels, 2 * channels)
        self.down = nn.Linear(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        y = self.down(F.gelu(self.up(y))).permute(0, 3, 1, 2)  # (B, C, H, W)
        return x + y


def test_blocks_that_permute_grow_the_field() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 4, stride=4), PermutedBlock(), PermutedBlock())
    result = summary(net, (3, 96, 96))
    assert result.output_receptive_field == (4 + 6 * 4 * 2,) * 2  # patchify 4, then two 7x7 at jump 4
    assert_oracle_agrees(net, (3, 96, 96))


def test_convnext_tiny_last_stage_has_field_1688() -> None:
    for spec in ("convnext_tiny", "tv/convnext_tiny"):
        result = summary(spec, (3, 224, 224))
        assert result.output_receptive_field == (1688, 1688) and result.output_receptive_field_global


class GlobalHead(nn.Module):
    """Two 3x3 convolutions, then one of three ways to pool globally, and a linear head."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.how == "module":
            x = self.pool(x).flatten(1)
        elif self.how == "functional":
            x = torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1)
        elif self.how == "max":
            x = torch.flatten(F.adaptive_max_pool2d(x, 1), 1)
        else:
            x = x.mean((2, 3))
        return self.fc(x)


@pytest.mark.parametrize("how", ["module", "functional", "mean", "max"])
def test_global_pooling_keeps_the_field_before_it_and_is_marked_global(how: str) -> None:
    result = summary(GlobalHead(how), (1, 12, 12))
    assert result.output_receptive_field == (5, 5) and result.output_receptive_field_global
    fc = next(r for r in result.layers if r.name == "fc")
    assert fc.receptive_field == (5, 5) and fc.receptive_field_global
    conv = next(r for r in result.layers if r.name == "features.2")
    assert conv.receptive_field == (5, 5) and not conv.receptive_field_global


@pytest.mark.parametrize(
    ("spec", "field"),
    [("tv/resnet50", 427), ("resnet50", 427), ("tv/densenet121", 2071), ("densenet121", 2071), ("tv/vgg16", 212)],
)
def test_classifier_output_field_is_the_map_before_global_pooling(spec: str, field: int) -> None:
    # The same network reports the same field whether its pool is a module or a function.
    result = summary(spec, (3, 224, 224))
    assert result.output_receptive_field == (field, field) and result.output_receptive_field_global


def test_inception_v3_mixed_7b_and_7c_match_the_published_fields() -> None:
    rows = {r.name: r for r in summary("tv/inception_v3", (3, 299, 299)).layers}
    assert rows["model.Mixed_7b"].receptive_field == (1183, 1183)
    assert rows["model.Mixed_7c"].receptive_field == (1311, 1311)


class Gated(nn.Module):
    """A 3x3 convolution scaled by an SE gate computed from its global average."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.squeeze = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        gate = torch.sigmoid(self.squeeze(x.mean((2, 3))))[:, :, None, None]  # (B, C, 1, 1)
        return x * gate


def test_gates_do_not_widen_the_field() -> None:
    result = summary(Gated(), (2, 10, 10))
    assert result.output_receptive_field == (3, 3) and not result.output_receptive_field_global
    assert_oracle_agrees(Gated(), (2, 10, 10))


class PadCrop(nn.Module):
    """Explicit padding, a crop by slicing (U-Net's skip crop), and a strided pool."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3)
        self.b = nn.Conv2d(2, 2, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.a(F.pad(x, (2, 0, 1, 1)))
        x = x[:, :, 2:-1, 1:]
        return self.b(F.max_pool2d(x, 3, stride=1, padding=1))


def test_padding_and_crops_shift_the_field() -> None:
    rows = assert_oracle_agrees(PadCrop(), (1, 20, 20))
    assert [r.name for r in rows] == ["PadCrop", "a", "b"]  # the crop keeps the field: nothing dropped


def test_adaptive_pooling_is_a_window_where_the_size_divides_and_lost_where_not() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.AdaptiveMaxPool2d(8), nn.Conv2d(2, 2, 3))
    assert summary(net, (1, 32, 32)).output_receptive_field == (3 + 3 * 1 + 2 * 4,) * 2  # 32 -> 8: windows of 4
    assert_oracle_agrees(net, (1, 32, 32))
    # 7 -> 6: cells of 2 pixels at uneven steps, not a grid of one field.
    uneven = summary(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(6)), (1, 9, 9))
    assert uneven.layers[0].receptive_field == (3, 3) and uneven.output_receptive_field is None


def test_a_transposed_convolution_loses_the_field_rather_than_guessing() -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.ConvTranspose2d(2, 1, 2, stride=2))
    result = summary(net, (1, 16, 16))
    assert result.layers[0].receptive_field == (3, 3)
    assert result.layers[1].receptive_field is None and result.output_receptive_field is None


# --- the oracle on real networks ------------------------------------------------------------


def test_oracle_agrees_on_cifar_resnet20() -> None:
    from cnnlab.models import create_model

    rows = assert_oracle_agrees(create_model("resnet20"), (3, 112, 112), limit=8)
    assert rows[-1].receptive_field == (81, 81)  # 3 + 6x2 + (2 + 5x4) + (4 + 5x8)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("builder", "size", "field"),
    [
        (torchvision.models.vgg11, 224, 150),
        (lambda: torchvision.models.alexnet().features, 256, 195),  # the classifier's pool: adaptive
        (torchvision.models.resnet18, 544, 435),
        (torchvision.models.mobilenet_v2, 576, 491),
        (torchvision.models.shufflenet_v2_x0_5, 640, 527),
    ],
    ids=["vgg11", "alexnet", "resnet18", "mobilenet_v2", "shufflenet_v2"],
)
def test_oracle_agrees_on_torchvision_classifiers(builder, size: int, field: int) -> None:
    rows = assert_oracle_agrees(builder(), (3, size, size), limit=8)
    assert rows[-1].receptive_field == (field, field)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "size", "field"), [("resnet56", 320, 249), ("resnet110", 576, 501)])
def test_oracle_agrees_on_deeper_cifar_resnets(name: str, size: int, field: int) -> None:
    from cnnlab.models import create_model

    rows = assert_oracle_agrees(create_model(name), (3, size, size), limit=6)
    assert rows[-1].receptive_field == (field, field)


# --- building never crashes ------------------------------------------------------------------


def test_torchvision_regnet_builds_where_meta_cannot() -> None:
    # RegNet's constructor calls .tolist() on tensors: built on the CPU, then copied to meta.
    result = summary("tv/regnet_y_400mf", (3, 224, 224))
    reference = torchvision.models.regnet_y_400mf()
    assert result.total_params == sum(p.numel() for p in reference.parameters())
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        reference.eval()(torch.zeros(1, 3, 224, 224))
    assert 2 * result.total_macs == counter.get_total_flops()


def broken_factory() -> nn.Module:
    """A factory whose constructor fails wherever it runs."""
    raise RuntimeError("widths do not divide the groups\nsecond line")


def test_a_model_that_cannot_be_built_gets_one_line() -> None:
    with pytest.raises(CnnlabError, match=r"tests.inspect.test_fields:broken_factory failed when called with no arguments: widths do not divide the groups$"):
        summary("tests.inspect.test_fields:broken_factory", (3, 32, 32))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_every_padding_mode_shifts_the_field_like_zero_padding(mode: str) -> None:
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=2, padding_mode=mode), nn.Conv2d(2, 2, 5, stride=2, padding=1, padding_mode=mode))
    result = summary(net, (1, 24, 24))
    assert result.output_receptive_field == (3 + 4, 3 + 4)
    assert result.layers[0].start == (-1.0, -1.0)  # padding 2 before a 3x3: the first unit is centred off the image
    assert_oracle_agrees(net, (1, 24, 24))


def test_a_zeros_like_does_not_inherit_the_field() -> None:
    class Offset(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.maximum(x, torch.zeros_like(self.conv(x)))  # a constant beside the input

    assert summary(Offset(), (1, 8, 8)).output_receptive_field == (1, 1)


def test_a_rule_that_fails_loses_the_field_but_not_the_summary(monkeypatch) -> None:
    from cnnlab.inspect.fields import FieldTracker

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a rule misread its op")

    monkeypatch.setattr(FieldTracker, "_windowed", broken)
    result = summary(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 8, 8))
    assert result.total_macs == 6 * 6 * 2 * 9  # the counts are untouched
    assert result.output_receptive_field is None  # the field says '-' rather than a guess


class Normalised(nn.Module):
    """Channel-normalised features, and an SE gate applied with expand_as (senet.pytorch's form)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.a(x), dim=1)  # a norm over channels, not over space
        gate = torch.sigmoid(self.fc(x.mean((2, 3))))[:, :, None, None]
        x = x * gate.expand_as(x)  # an expanded gate is still a gate
        return self.b(x)


def test_channel_norms_and_expanded_gates_keep_the_field_growing() -> None:
    result = summary(Normalised(), (1, 12, 12))
    assert result.output_receptive_field == (5, 5) and not result.output_receptive_field_global
    assert_oracle_agrees(Normalised(), (1, 12, 12))


def test_a_token_mixing_convolution_pools_globally() -> None:
    class TokenMix(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.mix = nn.Conv1d(36, 36, 1)  # over the 6x6 positions, as gMLP's spatial gating

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tokens = self.conv(x).flatten(2).transpose(1, 2)  # (B, HW, C)
            return tokens * self.mix(tokens)

    result = summary(TokenMix(), (1, 6, 6))
    assert result.output_receptive_field_global


@pytest.mark.parametrize("op", ["flip", "roll", "swap"])
def test_ops_that_move_positions_lose_the_field(op: str) -> None:
    class Moves(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, (1, 3), padding=(0, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            if op == "flip":
                return y + torch.flip(y, dims=(3,))
            if op == "roll":
                return torch.roll(y, 2, dims=2)
            return y + y.transpose(2, 3)  # H meets W: no box per axis

    assert summary(Moves(), (1, 8, 8)).output_receptive_field is None


def test_a_map_filled_from_two_sources_loses_the_field() -> None:
    class Filled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(1, 2, 3, padding=1)
            self.b = nn.Conv2d(1, 2, 5, padding=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = x.new_zeros(x.shape[0], 4, *x.shape[2:])
            out[:, :2] = self.a(x)
            out[:, 2:] = self.b(x)
            return out

    assert summary(Filled(), (1, 8, 8)).output_receptive_field is None
