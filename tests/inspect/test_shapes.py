"""The meta-device shortcuts give exactly what PyTorch's own meta kernels give (the reference)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from cnnlab.inspect.shapes import meta_output

aten = torch.ops.aten


def meta(*shape: int, channels_last: bool = False, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return an empty meta tensor, contiguous or channels-last."""
    x = torch.empty(shape, device="meta", dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def assert_same(ours: object, theirs: object) -> None:
    ours_list = list(ours) if isinstance(ours, tuple | list) else [ours]
    theirs_list = list(theirs) if isinstance(theirs, tuple | list) else [theirs]
    assert len(ours_list) == len(theirs_list)
    for a, b in zip(ours_list, theirs_list, strict=True):
        assert (a.shape, a.dtype, a.device) == (b.shape, b.dtype, b.device)
        if a.numel() > 1:
            assert a.stride() == b.stride()


CASES = [
    (aten.relu.default, (meta(2, 3, 5, 5),)),
    (aten.relu.default, (meta(2, 3, 5, 5, channels_last=True),)),
    (aten.gelu.default, (meta(2, 7, 3),)),
    (aten.hardtanh.default, (meta(2, 3, 4, 4), 0.0, 6.0)),
    (aten.add.Tensor, (meta(2, 3, 4, 4), meta(2, 3, 4, 4))),
    (aten.add.Tensor, (meta(2, 3, 4, 4, channels_last=True), meta(2, 3, 4, 4, channels_last=True))),
    (aten.mul.Tensor, (meta(2, 3, 4, 4), meta(2, 3, 1, 1))),
    (aten.mul.Tensor, (meta(3, 1, 1), meta(2, 3, 4, 4))),
    (aten.mul.Tensor, (meta(2, 3, 4, 4), 0.5)),
    (aten.div.Tensor, (meta(2, 3, dtype=torch.int64), 2)),
    (aten.add.Tensor, (meta(2, 3, dtype=torch.int64), meta(2, 3))),
    (aten.pow.Tensor_Scalar, (meta(2, 3), 2)),
    (aten.addmm.default, (meta(5), meta(2, 7), meta(7, 5))),
    (aten.mean.dim, (meta(2, 3, 4, 4), [2, 3], True)),
    (aten.mean.dim, (meta(2, 3, 4, 4), [-1, -2])),
    (aten.cat.default, ([meta(2, 3, 4, 4), meta(2, 5, 4, 4)], 1)),
    (aten.cat.default, ([meta(2, 3), meta(0), meta(4, 3)],)),
    (aten.convolution.default, (meta(2, 3, 17, 17), meta(8, 3, 3, 3), None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1)),
    (aten.convolution.default, (meta(1, 4, 9, 11), meta(4, 2, 5, 3), meta(4), [1, 2], [2, 0], [2, 1], False, [0, 0], 2)),
    (aten.convolution.default, (meta(1, 4, 7, 7), meta(4, 3, 2, 2), None, [2, 2], [0, 0], [1, 1], True, [1, 0], 1)),
    (aten.max_pool2d_with_indices.default, (meta(1, 2, 9, 9), [3, 3], [2, 2], [1, 1], [1, 1], True)),
    (aten.max_pool2d_with_indices.default, (meta(1, 2, 8, 8), [2], [], [0], [1], False)),
    (aten.max_pool2d_with_indices.default, (meta(1, 2, 10, 10), [3, 3], [2, 2], [0, 0], [2, 2], True)),
    (aten.avg_pool2d.default, (meta(1, 2, 7, 7), [3, 3], [2, 2], [1, 1], True, False)),
    (aten.avg_pool2d.default, (meta(1, 2, 6, 6), [2, 2])),
    (aten.max_pool2d_with_indices.default, (meta(1, 1, 6, 6, channels_last=True), [2, 2])),  # C=1: both layouts
    (aten._adaptive_avg_pool2d.default, (meta(2, 3, 7, 9), [1, 1])),
    (aten._adaptive_avg_pool2d.default, (meta(2, 3, 7, 9), [6, 6])),
    (aten.native_batch_norm.default, (meta(2, 3, 4, 4), meta(3), meta(3), meta(3), meta(3), False, 0.1, 1e-5)),
    (aten.native_layer_norm.default, (meta(2, 5, 5, 8), [8], meta(8), meta(8), 1e-6)),
]


@pytest.mark.parametrize(("func", "args"), CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(CASES)])
def test_shortcut_equals_the_meta_kernel(func, args) -> None:
    ours = meta_output(func, args, {})
    assert ours is not NotImplemented, "this case should take the shortcut"
    assert_same(ours, func(*args))


def test_in_place_ops_return_their_target_and_bad_shapes_go_to_the_kernel() -> None:
    x = meta(2, 3, 4, 4)
    assert meta_output(aten.normal_.default, (x, 0.0, 1.0), {}) is x
    assert meta_output(aten.add_.Tensor, (x, meta(3, 1, 1)), {}) is x
    assert meta_output(aten.add_.Tensor, (x, meta(5, 4, 4)), {}) is NotImplemented  # cannot broadcast into x
    assert meta_output(aten.addmm.default, (meta(5), meta(2, 6), meta(7, 5)), {}) is NotImplemented
    assert meta_output(aten.cat.default, ([meta(2, 3, 4), meta(2, 3, 5)], 1), {}) is NotImplemented
    assert meta_output(aten.convolution.default,
                       (meta(1, 3, 2, 2), meta(8, 3, 3, 3), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1), {}) is NotImplemented
    assert meta_output(aten.relu.default, (torch.zeros(2),), {}) is NotImplemented  # real data: the kernel runs


REFUSED = [
    (aten.sqrt.default, (meta(2, 3, dtype=torch.int64),)),  # integers promote to float
    (aten.neg.default, (meta(2, dtype=torch.bool),)),
    (aten.add.Tensor, (meta(2, 3), meta(2, 3)), {"alpha": 2}),
    (aten.pow.Tensor_Scalar, (meta(2, dtype=torch.int64), -1)),
    (aten.mean.dim, (meta(2, 3, 4), [1, 1])),
    (aten.mean.dim, (meta(2, 3, 4), [3])),
    (aten.cat.default, ([meta(2, 3), meta(2, 3)], 2)),
    (aten.native_layer_norm.default, (meta(2, 5, 6), [8], meta(8), meta(8), 1e-6)),
    (aten.native_batch_norm.default, (meta(2, 3, 4, 4), meta(4), meta(4), meta(4), meta(4), False, 0.1, 1e-5)),
    (aten.native_batch_norm.default, (meta(2, 3, 4, 4, dtype=torch.bfloat16), None, None, None, None, True, 0.1, 1e-5)),
    (aten.max_pool2d_with_indices.default, (meta(1, 2, 9, 9), [3, 3], [1, 1], [2, 2], [2, 2], False)),  # pad > k/2
    (aten.avg_pool2d.default, (meta(1, 2, 8, 8), [2, 2], [2, 2], [0, 0], False, True, 0)),
    (aten.add_.Tensor, (meta(2, 3, dtype=torch.int64), meta(2, 3))),  # a float result into an integer
]


@pytest.mark.parametrize("case", REFUSED, ids=[f"{c[0]}-{i}" for i, c in enumerate(REFUSED)])
def test_what_the_shortcut_cannot_vouch_for_goes_to_the_kernel(case) -> None:
    func, args = case[0], case[1]
    kwargs = case[2] if len(case) > 2 else {}
    assert meta_output(func, args, kwargs) is NotImplemented


def test_size_one_dims_get_canonical_strides_like_the_kernel() -> None:
    x = meta(1, 3, 4, 4)[:, 0:1]  # (1, 1, 4, 4) with the parent's stride on the size-1 channel dim
    assert_same(meta_output(aten.relu.default, (x,), {}), aten.relu.default(x))
    ours = meta_output(aten.relu.default, (x,), {})
    assert ours is NotImplemented or ours.stride() == aten.relu.default(x).stride()


def test_a_summary_imports_neither_dynamo_nor_sympy() -> None:
    # Where the command line's time went: torch._dynamo (about 2 s) and sympy (0.6 s) are imported
    # by Python meta kernels and dispatch modes; the summary of a zoo ResNet needs neither.
    code = ("import sys; from cnnlab.inspect.summary import summary; s = summary('resnet50', (3, 224, 224));"
            "print(s.total_macs, 'torch._dynamo' in sys.modules, 'sympy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-400:]
    assert done.stdout.split() == ["4089184256", "False", "False"]
