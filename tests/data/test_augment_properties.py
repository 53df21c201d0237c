"""Every op of the catalogue: shape, dtype, range, determinism under a seed, and the identity at magnitude 0."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data import augment as A
from cnnlab.data.augment.mixing import MIXING, beta

FACTS = A.DataFacts(3, 20, 20, (0.5, 0.4, 0.3))
IMAGE_OPS = [tag for tag, op in A.OPS.items() if op not in MIXING]


def batch(dtype: torch.dtype = torch.float32, count: int = 12) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(count, 3, 20, 20, generator=g).to(dtype)


def build(tag: str, **params) -> A.Op:
    op = A.OPS[tag](**({"size": 16} if tag in A.SIZED else {}), **params)
    return A.Augmentation.build((op,), FACTS, 10, [(batch() * 255).to(torch.uint8)]).ops[0]


def run(op, x: torch.Tensor, seed: int) -> torch.Tensor:
    fill = torch.tensor(FACTS.mean, dtype=x.dtype).view(1, 3, 1, 1)
    return op(x, torch.Generator().manual_seed(seed), fill)


@pytest.mark.parametrize("tag", IMAGE_OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_range_and_seed(tag: str, dtype: torch.dtype) -> None:
    op, x = build(tag), batch(dtype)
    a, b, c = run(op, x, 1), run(op, x, 1), run(op, x, 2)
    size = (op.size, op.size) if tag in A.SIZED else (20, 20)
    assert a.shape == (12, 3, *size) and a.dtype == dtype
    assert a.min() >= 0 and a.max() <= 1 and torch.isfinite(a).all()
    assert torch.equal(a, b)  # one seed, one result
    if tag not in A.SIZED:
        assert not torch.equal(a, c) or tag in ("grayscale",) and torch.equal(a, x)  # another seed draws anew
        assert not torch.equal(a, x)  # the op does something at its defaults
    assert torch.equal(x, batch(dtype))  # the input is never changed in place


@pytest.mark.parametrize("tag", [tag for tag in IMAGE_OPS if A.OPS[tag].neutral])
def test_magnitude_zero_is_the_identity(tag: str) -> None:
    op, x = build(tag, p=1.0, **A.OPS[tag].neutral), batch()
    assert (run(op, x, 4) - x).abs().max() <= 2e-6


@pytest.mark.parametrize("tag", IMAGE_OPS)
def test_p_zero_changes_nothing_and_p_one_every_image(tag: str) -> None:
    if tag in A.SIZED:
        pytest.skip(f"{tag} applies to every image (its p must be 1)")
    x = batch()
    assert torch.equal(run(build(tag, p=0.0), x, 3), x)
    changed = (run(build(tag, p=1.0), x, 3) != x).flatten(1).any(1)
    assert changed.float().mean() >= 0.5  # most images (a few draws may be mild, e.g. a flat region)


def test_p_is_a_per_image_coin() -> None:
    x = batch(count=400)
    flipped = (run(A.Flip(p=0.3), x, 0) != x).flatten(1).any(1).float().mean().item()
    assert 0.24 < flipped < 0.36


def test_uint8_goes_through_the_pipeline_and_comes_back_uint8() -> None:
    images = (batch() * 255).round().to(torch.uint8)
    augmentation = A.Augmentation.build((A.Flip(p=1.0),), FACTS)
    out, _ = augmentation.pixels(images, None, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and torch.equal(out, images.flip(3))


def test_beta_sampler_matches_its_moments() -> None:
    g = torch.Generator().manual_seed(0)
    for alpha in (0.2, 1.0, 2.0):
        draws = beta(alpha, 200_000, g, torch.device("cpu"))
        assert abs(draws.mean().item() - 0.5) < 0.005
        assert abs(draws.var().item() - 1 / (4 * (2 * alpha + 1))) < 0.005
        assert draws.min() >= 0 and draws.max() <= 1


@pytest.mark.parametrize("per_sample", [False, True])
def test_mixup_blends_images_and_targets_alike(per_sample: bool) -> None:
    x, y = batch(), torch.arange(12)  # one class per image: a target names its partner
    augmentation = A.Augmentation.build((A.MixUp(alpha=1.0, per_sample=per_sample),), FACTS, 12)
    out, soft = augmentation.pixels(x, y, torch.Generator().manual_seed(0))
    assert soft.shape == (12, 12) and torch.allclose(soft.sum(1), torch.ones(12))
    lams = []
    for i in range(12):
        if soft[i, i] == 1:
            assert torch.allclose(out[i], x[i])  # paired with itself: unchanged
            continue
        rest = soft[i].clone()
        rest[i] = 0
        j, lam = int(rest.argmax()), soft[i, i]
        assert torch.allclose(out[i], lam * x[i] + (1 - lam) * x[j], atol=1e-6)
        lams.append(round(float(lam), 5))
    assert (len(set(lams)) > 1) == per_sample  # one lambda per batch, or one per image


@pytest.mark.parametrize("per_sample", [False, True])
def test_cutmix_targets_follow_the_pasted_area(per_sample: bool) -> None:
    x = torch.stack([torch.full((3, 20, 20), i / 12) for i in range(12)])
    y = torch.arange(12) % 10
    augmentation = A.Augmentation.build((A.CutMix(alpha=1.0, per_sample=per_sample),), FACTS, 10)
    out, soft = augmentation.pixels(x, y, torch.Generator().manual_seed(1))
    own = (out == x).flatten(1).float().mean(1)  # the share of each image still its own
    assert torch.allclose(soft[torch.arange(12), y], own, atol=1e-6)


def test_policies_cover_the_papers_tables() -> None:
    from cnnlab.data.augment.policies import CIFAR10_POLICY, IMAGENET_POLICY, NAMES, RANDAUGMENT_OPS

    assert len(CIFAR10_POLICY) == len(IMAGENET_POLICY) == 25
    assert all(name in NAMES for table in (CIFAR10_POLICY, IMAGENET_POLICY) for sub in table for name, _, _ in sub)
    assert len(RANDAUGMENT_OPS) == 14 and "invert" not in RANDAUGMENT_OPS


def test_randaugment_draws_one_op_per_image_and_layer() -> None:
    op = A.OPS["randaugment"](n=1, magnitude=30)
    params = op.sample(2000, (3, 20, 20), torch.Generator().manual_seed(0), torch.device("cpu"))
    counts = torch.bincount(params["op"].view(-1), minlength=15)[:14]
    assert counts.min() > 2000 / 14 * 0.7  # uniform over the 14 ops


SYNC_FREE = [tag for tag in A.OPS if tag != "superpixels"]  # superpixels run SLIC on the host by design


def _pipeline(tag: str, device: torch.device) -> A.Augmentation:
    op = A.OPS[tag](**({"size": 16} if tag in A.SIZED else {}))
    facts = A.DataFacts(3, 20, 20, FACTS.mean, (0.1, 0.01, 0.001), ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))
    return A.Augmentation.build((op,), facts, 10)


@pytest.mark.parametrize("tag", SYNC_FREE)
def test_no_tensor_is_built_from_host_data_once_warm(tag: str, monkeypatch) -> None:
    # A tensor built from Python numbers on a GPU is a blocking copy; after the first batch every constant is cached.
    augmentation, x, y = _pipeline(tag, torch.device("cpu")), batch(), torch.arange(12) % 10
    augmentation.pixels(x, y, torch.Generator().manual_seed(0))
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: (_ for _ in ()).throw(AssertionError("torch.tensor per step")))
    augmentation.pixels(x, y, torch.Generator().manual_seed(1))


@pytest.mark.gpu
@pytest.mark.parametrize("tag", SYNC_FREE)
def test_ops_never_make_the_host_wait_on_a_gpu(tag: str) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    device = torch.device("cuda")
    augmentation, x, y = _pipeline(tag, device), batch().to(device), (torch.arange(12) % 10).to(device)
    generator = torch.Generator(device).manual_seed(0)
    augmentation.pixels(x, y, generator)  # warm: constants cached
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        augmentation.pixels(x, y, generator)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("size", [(8, 8), (16, 16), (32, 32)])
def test_strong_perspective_never_gives_nan(size: tuple[int, int]) -> None:
    x = torch.rand(400, 3, *size, generator=torch.Generator().manual_seed(0))
    out = run(A.OPS["perspective"](distortion=1.0), x, 0)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("tag", ["rotate", "scale", "shear", "perspective", "elastic", "resized_crop", "translate"])
def test_half_precision_warps_stay_in_place(tag: str, dtype: torch.dtype) -> None:
    x = torch.rand(4, 3, 160, 224, generator=torch.Generator().manual_seed(0))
    op = A.OPS[tag](p=1.0, **A.OPS[tag].neutral)
    out = run(op, x.to(dtype), 0)
    assert out.dtype == dtype and (out.float() - x.to(dtype).float()).abs().max() <= 1e-2
    moved = run(A.OPS[tag](), x.to(dtype), 0).float()
    assert torch.isfinite(moved).all() and moved.min() >= 0 and moved.max() <= 1
    assert (moved - run(A.OPS[tag](), x, 0)).abs().max() <= 2e-2  # the float32 result, to half's rounding


def test_translate_and_cutout_draw_the_first_releases_stream() -> None:
    # The first release drew no coin for these two: (dy, dx) then (cy, cx) straight from the generator.
    x, g = batch(), torch.Generator().manual_seed(9)
    out = A.Translate(padding=2)(x, g, torch.zeros(1, 3, 1, 1))
    ref = torch.Generator().manual_seed(9)
    dy, dx = torch.randint(0, 5, (12,), generator=ref), torch.randint(0, 5, (12,), generator=ref)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    assert all(torch.equal(out[i], padded[i, :, dy[i] : dy[i] + 20, dx[i] : dx[i] + 20]) for i in range(12))


def test_neutral_resized_crop_keeps_a_non_square_image() -> None:
    x = torch.rand(6, 3, 32, 48, generator=torch.Generator().manual_seed(0))
    op = A.OPS["resized_crop"](**A.OPS["resized_crop"].neutral)
    assert (run(op, x, 0) - x).abs().max() <= 1e-5


def test_beta_sampler_is_unbiased_for_tiny_alpha() -> None:
    draws = beta(0.05, 200_000, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert abs(draws.mean().item() - 0.5) < 0.01 and abs((draws < 0.5).float().mean().item() - 0.5) < 0.01


def test_a_policy_named_in_python_is_its_enum() -> None:
    from cnnlab.data.augment.policies import AutoAugmentPolicy

    assert A.OPS["autoaugment"](policy="imagenet").policy is AutoAugmentPolicy.IMAGENET


@pytest.mark.parametrize("tag", IMAGE_OPS)
def test_an_empty_batch_stays_empty(tag: str) -> None:
    out = run(build(tag), torch.zeros(0, 3, 20, 20), 0)
    assert out.shape[0] == 0


@pytest.mark.parametrize("wide", [False, True])
def test_policy_choices_are_each_images_own_primitive(wide: bool) -> None:
    from cnnlab.data.augment.policies import NAMES, PRIMITIVES, apply_choices

    g = torch.Generator().manual_seed(0)
    x = batch(count=40)
    op = torch.randint(-1, len(NAMES), (40,), generator=g)
    magnitude, sign = torch.rand(40, generator=g), torch.randint(0, 2, (40,), generator=g).float() * 2 - 1
    fill = torch.tensor(FACTS.mean).view(1, 3, 1, 1)
    out = apply_choices(x, op, magnitude, sign, fill, wide)
    for i in range(40):
        if op[i] < 0:
            assert torch.equal(out[i], x[i])
            continue
        fn, signed = PRIMITIVES[NAMES[op[i]]]
        m = magnitude[i : i + 1] * (sign[i : i + 1] if signed else 1)
        assert torch.allclose(out[i], fn(x[i : i + 1], m, fill, wide)[0], atol=1e-6)


@pytest.mark.parametrize("tag", [tag for tag in A.OPS if tag != "superpixels"])
def test_the_accelerator_path_computes_what_the_cpu_path_does(tag: str, monkeypatch) -> None:
    # On a GPU, ops mask instead of gathering the chosen images; CI has no GPU, so that path runs here on the CPU.
    from cnnlab.data.augment import base

    augmentation, x, y = _pipeline(tag, torch.device("cpu")), batch(), torch.arange(12) % 10
    gathered = augmentation.pixels(x, y, torch.Generator().manual_seed(5))
    monkeypatch.setattr(base, "host_side", lambda device: False)
    masked = augmentation.pixels(x, y, torch.Generator().manual_seed(5))
    assert torch.allclose(gathered[0], masked[0], atol=1e-5)
    assert (gathered[1] is None) == (masked[1] is None) and (gathered[1] is None or torch.allclose(gathered[1], masked[1]))
