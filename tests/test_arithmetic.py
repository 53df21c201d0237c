"""Shape formulas against real PyTorch layers (hypothesis) and against hand computations."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab import arithmetic as ar
from cnnlab.errors import ShapeError

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
SIZE_CAP = {1: 40, 2: 16, 3: 9}  # keeps 3D tensors tiny so 1,000 examples run in seconds


@st.composite
def conv_configs(draw: st.DrawFn) -> dict:
    dims = draw(st.sampled_from([1, 2, 3]))
    per_dim = []
    for _ in range(dims):
        per_dim.append(
            dict(
                size=draw(st.integers(1, SIZE_CAP[dims])),
                kernel=draw(st.integers(1, 5)),
                stride=draw(st.integers(1, 4)),
                dilation=draw(st.integers(1, 3)),
            )
        )
    padding = draw(st.one_of(st.integers(0, 3), st.sampled_from(["valid", "same", "full"])))
    return dict(dims=dims, per_dim=per_dim, padding=padding)


def _pads_for_torch(pads: list[tuple[int, int]]) -> list[int]:
    return [p for pair in reversed(pads) for p in pair]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_configs())
def test_conv_output_size_matches_pytorch(config: dict) -> None:
    dims, per_dim, padding = config["dims"], config["per_dim"], config["padding"]
    x = torch.zeros((1, 1, *[d["size"] for d in per_dim]))
    w = torch.zeros((1, 1, *[d["kernel"] for d in per_dim]))
    stride = tuple(d["stride"] for d in per_dim)
    dilation = tuple(d["dilation"] for d in per_dim)
    try:
        expected = [
            ar.conv_output_size(d["size"], d["kernel"], d["stride"], padding, d["dilation"])
            for d in per_dim
        ]
    except ShapeError:
        # Our formula refuses: PyTorch must refuse the same layer.
        pads = [ar.resolve_padding(padding, d["size"], d["kernel"], d["stride"], d["dilation"]) for d in per_dim]
        with pytest.raises(RuntimeError):
            CONV[dims](F.pad(x, _pads_for_torch(pads)), w, stride=stride, dilation=dilation)
        return
    if padding == "same" and any(s > 1 for s in stride):
        # PyTorch refuses padding="same" with stride > 1: pad by the computed amounts, then conv.
        pads = [ar.same_padding(d["size"], d["kernel"], d["stride"], d["dilation"]) for d in per_dim]
        out = CONV[dims](F.pad(x, _pads_for_torch(pads)), w, stride=stride, dilation=dilation)
    elif isinstance(padding, str) and padding != "full":
        out = CONV[dims](x, w, stride=stride, padding=padding, dilation=dilation)
    else:
        pad = tuple(ar.resolve_padding(padding, 1, d["kernel"], 1, d["dilation"])[0] for d in per_dim)
        out = CONV[dims](x, w, stride=stride, padding=pad, dilation=dilation)
    assert list(out.shape[2:]) == expected
    if padding == "same":
        assert expected == [-(-d["size"] // d["stride"]) for d in per_dim]


@settings(max_examples=500, deadline=None)
@given(
    dims=st.sampled_from([1, 2, 3]),
    size=st.integers(1, 8),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 3),
    padding=st.integers(0, 4),
    output_padding=st.integers(0, 3),
)
def test_conv_transpose_output_size_matches_pytorch(
    dims: int, size: int, kernel: int, stride: int, dilation: int, padding: int, output_padding: int
) -> None:
    x = torch.zeros((1, 1, *[size] * dims))
    w = torch.zeros((1, 1, *[kernel] * dims))
    try:
        expected = ar.conv_transpose_output_size(size, kernel, stride, padding, dilation, output_padding)
    except ShapeError:
        # PyTorch refuses, or returns an empty map; either way there is no output to have.
        try:
            out = CONV_T[dims](x, w, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
        except RuntimeError:
            return
        assert out.numel() == 0
        return
    out = CONV_T[dims](x, w, stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
    assert list(out.shape[2:]) == [expected] * dims


@settings(max_examples=500, deadline=None)
@given(
    dims=st.sampled_from([1, 2, 3]),
    size=st.integers(1, 14),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 2),
    padding=st.integers(0, 2),
    ceil_mode=st.booleans(),
)
def test_pool_output_size_matches_pytorch(
    dims: int, size: int, kernel: int, stride: int, dilation: int, padding: int, ceil_mode: bool
) -> None:
    x = torch.zeros((1, 1, *[size] * dims))
    try:
        expected = ar.pool_output_size(size, kernel, stride, padding, dilation, ceil_mode)
    except ShapeError:
        with pytest.raises(RuntimeError):
            MAX_POOL[dims](x, kernel, stride, padding, dilation, ceil_mode=ceil_mode)
        return
    out = MAX_POOL[dims](x, kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    assert list(out.shape[2:]) == [expected] * dims


def test_hand_computed_sizes() -> None:
    # AlexNet's first layer: 227 -> 55 with an 11x11 kernel at stride 4 (Krizhevsky et al. 2012).
    assert ar.conv_output_size(227, 11, 4) == 55
    # VGG's 3x3 conv with padding 1 keeps 224; a 2x2 stride-2 pool halves it.
    assert ar.conv_output_size(224, 3, 1, 1) == 224
    assert ar.pool_output_size(224, 2) == 112
    # GoogLeNet's ceil-mode 3x3 stride-2 pools: 112 -> 56 -> ... 14 -> 7.
    assert ar.pool_output_size(112, 3, 2, ceil_mode=True) == 56
    assert ar.pool_output_size(14, 3, 2, ceil_mode=True) == 7
    # The ceil-mode rule drops a last window that would start in the right padding only.
    assert ar.pool_output_size(5, 2, 2, padding=1, ceil_mode=True) == 3
    assert ar.pool_output_size(6, 2, 2, padding=1, ceil_mode=True) == 4
    assert ar.conv_transpose_output_size(7, 4, 2, 1) == 14  # DCGAN's doubling transposed conv


def test_same_padding_is_tensorflows_rule() -> None:
    # i=5, k=3, s=2: out 3, total (3-1)*2 + 3 - 5 = 2 -> (1, 1)
    assert ar.same_padding(5, 3, 2) == (1, 1)
    # i=6, k=3, s=2: out 3, total 1: the smaller half (0) goes before
    assert ar.same_padding(6, 3, 2) == (0, 1)
    # even kernel at stride 1: total 1, again after
    assert ar.same_padding(7, 2, 1) == (0, 1)
    # dilation widens the kernel: k=3, d=2 is an extent of 5 -> total 4
    assert ar.same_padding(10, 3, 1, 2) == (2, 2)
    # a kernel that fits with room to spare needs no padding: max(..., 0)
    assert ar.same_padding(8, 1, 4) == (0, 0)


def test_counts_by_hand() -> None:
    # VGG-16 conv1_1: 3->64, 3x3: 64*3*9 + 64 = 1,792 params; 224*224*64*27 MACs
    assert ar.conv_params(3, 64, 3) == 1_792
    assert ar.conv_macs(3, 64, 3, (224, 224)) == 86_704_128
    # Depth-wise 3x3 over 32 channels: 32*1*9 weights, no bias
    assert ar.conv_params(32, 32, 3, groups=32, bias=False) == 288
    assert ar.linear_params(25_088, 4_096) == 102_764_544
    assert ar.linear_macs(4_096, 1_000) == 4_096_000
    assert ar.conv_transpose_macs(16, 8, 4, (7, 7)) == 7 * 7 * 16 * 8 * 16


def test_receptive_field_recurrence_vgg16() -> None:
    # Five VGG blocks (2, 2, 3, 3, 3 convs of 3x3, each block ending in a 2x2 pool):
    # the field after the last pool is 212 with jump 32 (a standard hand computation).
    layers = []
    for convs in (2, 2, 3, 3, 3):
        layers += [(3, 1, 1, 1)] * convs + [(2, 2, 0, 1)]
    fields = ar.receptive_fields(layers)
    assert (fields[-1].size, fields[-1].jump) == (212, 32)
    assert fields[1].size == 5 and fields[2].size == 6
    assert fields[-1].start == 15.5  # centre of the first 2x2 cell of 32x32 pixels, pixel units


def test_dilation_grows_field_exponentially() -> None:
    # Yu & Koltun 2016: 3x3 convs with dilation 1, 2, 4 give fields 3, 7, 15.
    fields = ar.receptive_fields([(3, 1, 1, 1), (3, 1, 2, 2), (3, 1, 4, 4)])
    assert [f.size for f in fields] == [3, 7, 15]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ar.conv_output_size(3, 5), "larger than the padded input"),
        (lambda: ar.conv_output_size(-1, 3), "size must be >= 1"),
        (lambda: ar.conv_output_size(8, 3, padding="sideways"), "unknown padding policy"),
        (lambda: ar.conv_output_size(8, 3, padding=-1), "padding must be >= 0"),
        (lambda: ar.pool_output_size(8, 2, padding=2), "at most half the kernel"),
        (lambda: ar.conv_transpose_output_size(4, 3, 2, output_padding=2), "smaller than stride"),
        (lambda: ar.conv_params(6, 4, 3, groups=4), "must divide"),
    ],
)
def test_bad_input_names_the_problem(call, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        call()
