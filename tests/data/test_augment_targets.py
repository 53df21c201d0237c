"""Targets move with their images: a box drawn as a filled mask and moved by each geometric op stays its moved box."""

import pytest
import torch

from cnnlab.data.augment import OPS
from cnnlab.data.augment.targets import IGNORE, settle

SIDE = 192  # canvas
#: Ops whose moved box is the moved mask's box (IoU >= 0.98), and ops whose moved box encloses it.
EXACT = {"flip": {}, "vflip": {}, "translate": {"padding": 24}, "scale": {"min_scale": 0.7, "max_scale": 1.3},
         "resized_crop": {}, "center_crop": {"size": 160}, "random_crop": {"size": 150}}
ENCLOSING = {"rotate": {"degrees": 40.0}, "shear": {"degrees": 25.0, "y_degrees": 15.0},
             "perspective": {"distortion": 0.4}, "elastic": {"alpha": 34.0, "sigma": 4.0}}
TRIALS = 12


def _scene(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return an image, its one-box mask (1 inside, 0 outside) and its box row, a box of 100 to 140 px a side."""
    g = torch.Generator().manual_seed(seed)
    w, h = (int(v) for v in torch.randint(100, 141, (2,), generator=g))
    x1, y1 = int(torch.randint(0, SIDE - w + 1, (1,), generator=g)), int(torch.randint(0, SIDE - h + 1, (1,), generator=g))
    mask = torch.zeros(1, SIDE, SIDE, dtype=torch.uint8)
    mask[0, y1 : y1 + h, x1 : x1 + w] = 1
    box = torch.tensor([[[3.0, x1, y1, x1 + w, y1 + h], [-1, -1, -1, -1, -1]]])
    return torch.rand(1, 1, SIDE, SIDE, generator=g), mask, box


def _moved(op, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (moved image, moved mask, moved box rows) from one draw of the op's parameters."""
    image, mask, box = _scene(seed)
    fill = torch.zeros(1, 1, 1, 1)
    out, moved_mask = op.with_targets(image, mask, torch.Generator().manual_seed(seed), fill)
    again, moved_box = op.with_targets(image, box, torch.Generator().manual_seed(seed), fill)
    assert torch.equal(out, again)  # one draw: the same image both times
    assert torch.equal(out, op(image, torch.Generator().manual_seed(seed), fill))  # and the same as without targets
    return out, moved_mask, moved_box


def _mask_box(mask: torch.Tensor) -> torch.Tensor | None:
    """Return the extent (x1, y1, x2, y2) of a mask's ones, pixel k covering [k, k + 1)."""
    ys, xs = torch.nonzero(mask[0] == 1, as_tuple=True)
    if not len(xs):
        return None
    return torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    inter = (torch.minimum(a[2:], b[2:]) - torch.maximum(a[:2], b[:2])).clamp_min(0).prod()
    union = (a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter
    return float(inter / union)


@pytest.mark.parametrize("tag", sorted(EXACT))
def test_moved_box_is_the_moved_masks_box(tag: str) -> None:
    op = OPS[tag](**EXACT[tag], **({} if tag in ("center_crop", "random_crop") else {"p": 1.0}))
    worst = 1.0
    for seed in range(TRIALS):
        _, mask, rows = _moved(op, seed)
        expected = _mask_box(mask)
        if expected is None or (expected[2:] - expected[:2]).min() < 2:
            assert rows[0, 0, 0] == -1  # the box left the image with its mask: dropped
            continue
        assert rows[0, 0, 0] == 3 and rows[0, 1, 0] == -1  # class kept, padding stays padding
        worst = min(worst, _iou(rows[0, 0, 1:], expected))
    assert worst >= 0.98, f"{tag}: worst IoU {worst:.4f}"


@pytest.mark.parametrize("tag", sorted(ENCLOSING))
def test_moved_box_encloses_the_moved_mask(tag: str) -> None:
    op = OPS[tag](**ENCLOSING[tag], p=1.0)
    for seed in range(TRIALS):
        _, mask, rows = _moved(op, seed)
        inside = _mask_box(mask)
        if inside is None:
            continue
        box = rows[0, 0, 1:]
        # Nearest neighbour takes a pixel whose centre falls inside: at most half a pixel past the box.
        assert (box[:2] <= inside[:2] + 0.5).all() and (box[2:] >= inside[2:] - 0.5).all(), (tag, seed, box, inside)
        assert _iou(box, inside) > 0.5  # enclosing, not the whole image


def test_pixels_brought_in_are_ignored_not_background() -> None:
    op = OPS["translate"](padding=20, p=1.0)
    mask = torch.zeros(2, 32, 32, dtype=torch.uint8)
    _, moved = op.with_targets(torch.rand(2, 1, 32, 32), mask, torch.Generator().manual_seed(1), torch.zeros(1, 1, 1, 1))
    assert set(moved.unique().tolist()) <= {0, IGNORE} and (moved == IGNORE).any()


def test_a_box_squeezed_below_two_pixels_is_dropped() -> None:
    target = torch.tensor([[[1.0, 5, 5, 20, 20], [2.0, 10, 10, 30, 30], [-1, -1, -1, -1, -1]]])
    moved = torch.tensor([[[-10.0, 5, -8.5, 20], [10.0, 10, 30, 30], [0, 0, 50, 50]]])
    rows = settle(target, moved, 32, 32)
    assert rows[0, 0].tolist() == [-1] * 5  # 1.5 px wide once clipped
    assert rows[0, 1].tolist() == [2.0, 10, 10, 30, 30] and rows[0, 2].tolist() == [-1] * 5  # padding stays padding


def test_photometric_ops_leave_targets_alone_and_uncarried_ops_are_refused() -> None:
    from cnnlab.data.augment import refuse_uncarried
    from cnnlab.errors import CnnlabError

    image, mask, box = _scene(0)
    op = OPS["brightness"](p=1.0)
    assert torch.equal(op.with_targets(image, box, torch.Generator().manual_seed(0), torch.zeros(1, 1, 1, 1))[1], box)
    for tag in ("randaugment", "center_crop"):
        with pytest.raises(CnnlabError, match=tag):
            refuse_uncarried([OPS[tag]()], "boxes")
    with pytest.raises(CnnlabError, match="mixup cannot move masks"):  # a blended mask means nothing
        refuse_uncarried([OPS["mixup"]()], "masks")
    refuse_uncarried([OPS["mixup"](), OPS["cutmix"]()], "boxes")
    refuse_uncarried([OPS["cutmix"]()], "masks")


def test_a_box_already_small_stays_when_a_move_keeps_its_size() -> None:
    target = torch.tensor([[[1.0, 10, 10, 11.5, 20], [-1, -1, -1, -1, -1]]])
    _, moved = OPS["flip"](p=1.0).with_targets(torch.rand(1, 1, 32, 32), target, torch.Generator().manual_seed(0),
                                                torch.zeros(1, 1, 1, 1))
    assert moved[0, 0].tolist() == [1.0, 20.5, 10, 22, 20]  # 1.5 px wide before and after: an object still


def _objects(seed: int, count: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Return noise images (no two pixels alike) and two whole-pixel boxes per image, 12 to 40 px a side."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.full((count, 3, 5), -1.0)
    for i in range(count):
        for k in range(2):
            w, h = (int(v) for v in torch.randint(12, 40, (2,), generator=g))
            x1, y1 = int(torch.randint(0, 96 - w, (1,), generator=g)), int(torch.randint(0, 96 - h, (1,), generator=g))
            rows[i, k] = torch.tensor([float(k), x1, y1, x1 + w, y1 + h])
    return torch.rand(count, 1, 96, 96, generator=g), rows


@pytest.mark.parametrize("seed", range(6))
def test_cutmix_keeps_the_boxes_a_quarter_visible_and_clips_the_pasted_ones_to_the_patch(seed: int) -> None:
    """The patch is read back from the pixels (where the partner's noise shows), and each box's fate counted in pixels."""
    from cnnlab.data.augment.mixing import VISIBLE

    images, rows = _objects(seed)
    out, mixed = OPS["cutmix"](alpha=1.0, per_sample=True).with_targets(images, rows, torch.Generator().manual_seed(seed),
                                                                         torch.zeros(1, 1, 1, 1))
    assert mixed.shape == (4, 6, 5)
    partner = torch.arange(-1, 3).remainder(4)
    decided = 0
    for i in range(4):
        patch = out[i, 0] != images[i, 0]
        assert torch.equal(out[i, 0][patch], images[partner[i], 0][patch])
        for k in range(2):
            x1, y1, x2, y2 = (int(v) for v in rows[i, k, 1:])
            shows = 1 - float(patch[y1:y2, x1:x2].sum()) / ((x2 - x1) * (y2 - y1))
            assert bool(mixed[i, k, 0] >= 0) == (shows >= VISIBLE), (i, k, shows)
            x1, y1, x2, y2 = (int(v) for v in rows[partner[i], k, 1:])
            inside = torch.zeros_like(patch)
            inside[y1:y2, x1:x2] = patch[y1:y2, x1:x2]
            share = float(inside.sum()) / ((x2 - x1) * (y2 - y1))
            pasted = mixed[i, 3 + k]
            assert bool(pasted[0] >= 0) == (share >= VISIBLE), (i, k, share)
            if share >= VISIBLE:
                cols, lines = inside.any(0).nonzero(), inside.any(1).nonzero()
                extent = torch.tensor([cols.min(), lines.min(), cols.max() + 1, lines.max() + 1]).float()
                assert torch.equal(pasted, torch.cat([rows[partner[i], k, :1], extent]))
            decided += int(0 < shows < 1) + int(0 < share < 1)
    assert decided  # some box was cut by a patch: the rule was exercised


def test_mixup_keeps_both_images_boxes_weighted_by_their_share() -> None:
    from cnnlab.models.detector import AREA, WEIGHT

    images, rows = _objects(0)
    out, mixed = OPS["mixup"](alpha=1.0, per_sample=True).with_targets(images, rows, torch.Generator().manual_seed(3),
                                                                       torch.zeros(1, 1, 1, 1))
    partner = torch.arange(-1, 3).remainder(4)
    assert mixed.shape == (4, 6, 7)
    for i in range(4):
        lam = float(mixed[i, 0, WEIGHT])
        assert 0 < lam < 1 and torch.allclose(out[i], lam * images[i] + (1 - lam) * images[partner[i]], atol=1e-6)
        assert torch.equal(mixed[i, :2, :5], rows[i, :2]) and torch.equal(mixed[i, 3:5, :5], rows[partner[i], :2])
        assert torch.allclose(mixed[i, 3:5, WEIGHT], torch.tensor(1 - lam)) and (mixed[i, [2, 5], 0] == -1).all()
        sides = rows[i, :2, 3:5] - rows[i, :2, 1:3]
        assert torch.allclose(mixed[i, :2, AREA], sides.prod(-1))  # no area column before: the box's


def test_cutmix_pastes_the_masks_with_the_pixels() -> None:
    images, _ = _objects(1)
    masks = torch.randint(0, 5, (4, 96, 96), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    op = OPS["cutmix"](alpha=1.0, per_sample=True)
    out, moved = op.with_targets(images, masks, torch.Generator().manual_seed(2), torch.zeros(1, 1, 1, 1))
    patch = out[:, 0] != images[:, 0]
    partner = torch.arange(-1, 3).remainder(4)
    assert patch.any() and torch.equal(moved, torch.where(patch, masks[partner], masks))


def test_a_batch_of_one_is_left_unmixed_rather_than_mixed_with_itself() -> None:
    images, rows = _objects(0, count=1)
    for tag in ("mixup", "cutmix"):
        out, mixed = OPS[tag](alpha=1.0).with_targets(images, rows, torch.Generator().manual_seed(0), torch.zeros(1, 1, 1, 1))
        assert torch.equal(out, images) and int((mixed[..., 0] >= 0).sum()) == 2, tag  # its two boxes, not four
