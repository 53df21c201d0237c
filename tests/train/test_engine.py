"""The training loop: learning, exact resume, NaN stop, early stopping, augmentation, checkpoints."""

import math

import pytest
import torch
from torch import nn

from cnnlab.data.sources import load
from cnnlab.errors import CnnlabError
from cnnlab.models.small import small_cnn
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.engine import Callback, EarlyStopping, Trainer, augment_batch
from cnnlab.train.recipe import AugmentConfig, load_recipe


@pytest.fixture(scope="module")
def digits():
    splits = load("digits")
    return splits.train, splits.test


def _trainer(digits, overrides, callbacks=()):
    torch.manual_seed(0)
    recipe = load_recipe("default", ["batch_size=64", "optim.lr=0.05", "schedule.warmup_epochs=0", *overrides])
    train, val = digits
    return Trainer(small_cnn(width=8), recipe, train, val, callbacks=callbacks)


class Recorder(Callback):
    def __init__(self) -> None:
        self.rows = []

    def on_epoch_end(self, state, metrics, is_best) -> None:
        self.rows.append(metrics)


def test_learns_digits(digits) -> None:
    recorder = Recorder()
    state = _trainer(digits, ["epochs=4"], [recorder]).fit()
    assert state.epoch == 4 and state.step == 4 * math.ceil(len(digits[0]) / 64)
    assert recorder.rows[-1].val_acc > 0.9 and recorder.rows[-1].val_top5 >= recorder.rows[-1].val_acc


def test_resume_is_exact(digits, tmp_path) -> None:
    overrides = ["epochs=4", "deterministic=true", "ema_decay=0.9", "augment.crop_padding=1"]
    full = _trainer(digits, overrides)
    full_rows = Recorder()
    full.callbacks = [full_rows]
    full.fit()

    first = _trainer(digits, overrides)

    class StopAfterTwo(Callback):
        def on_epoch_end(self, state, metrics, is_best) -> None:
            if state.epoch == 2:
                state.stop_reason = "interrupted"

    first.callbacks = [StopAfterTwo()]
    first.fit()
    first.checkpoint(tmp_path / "last")

    second = _trainer(digits, overrides)
    torch.manual_seed(123)  # a different process state: resume must restore everything itself
    second.resume(tmp_path / "last")
    rows = Recorder()
    second.callbacks = [rows]
    second.fit()
    for a, b in zip(full.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert len(rows.rows) == 2
    assert [r.val_loss for r in rows.rows] == [r.val_loss for r in full_rows.rows[2:]]


def test_resume_refuses_another_recipe(digits, tmp_path) -> None:
    trainer = _trainer(digits, ["epochs=1"])
    trainer.fit()
    trainer.checkpoint(tmp_path / "last")
    with pytest.raises(CnnlabError, match="another recipe"):
        _trainer(digits, ["epochs=2"]).resume(tmp_path / "last")


def test_nan_stops_with_epoch_and_step(digits) -> None:
    trainer = _trainer(digits, ["epochs=2", "optim.lr=1e30", "optim.momentum=0.0", "optim.nesterov=false"])
    with pytest.raises(CnnlabError, match=r"NaN or infinite in epoch 1 at step \d+"):
        trainer.fit()


def test_early_stopping(digits) -> None:
    trainer = _trainer(digits, ["epochs=20", "optim.lr=1e-9", "schedule.name=constant"], [EarlyStopping(2)])
    state = trainer.fit()
    assert state.stop_reason.startswith("early stopping") and state.epoch < 20


def test_checkpoint_round_trip(digits, tmp_path) -> None:
    trainer = _trainer(digits, ["epochs=1"])
    trainer.fit()
    trainer.checkpoint(tmp_path / "last")
    trainer.checkpoint(tmp_path / "last")  # replaced whole, no staging left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]
    model = small_cnn(width=8)
    state, info = load_checkpoint(tmp_path / "last", model)
    assert info["epoch"] == 1 and state["counters"]["epoch"] == 1
    assert torch.equal(model.fc.weight, trainer.model.fc.weight.detach())
    with pytest.raises(CnnlabError, match="not a complete checkpoint"):
        load_checkpoint(tmp_path)


def test_augment_batch_by_hand() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4).repeat(64, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    flipped = augment_batch(x, AugmentConfig(flip=True), g)
    is_flipped = (flipped == x.flip(3)).flatten(1).all(1)
    assert ((flipped == x).flatten(1).all(1) | is_flipped).all() and 10 < is_flipped.sum() < 54
    shifted = augment_batch(x, AugmentConfig(crop_padding=1), g)
    # Every crop is the input shifted by at most one pixel with zeros coming in.
    assert all(any(torch.equal(s[0], torch.roll(nn.functional.pad(x[0, 0], (1, 1, 1, 1)), (dy, dx), (0, 1))[1:5, 1:5])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)) for s in shifted)
    cut = augment_batch(torch.ones(8, 1, 9, 9), AugmentConfig(cutout=3), g)
    assert ((cut == 0).flatten(1).sum(1) <= 9).all() and (cut == 0).any()


def test_compile_trains_and_checkpoints_plain_names(digits, tmp_path) -> None:
    # Inductor on a CPU takes tens of seconds to compile: one epoch is enough to prove the path.
    trainer = _trainer(digits, ["epochs=1", "compile=true"])
    assert trainer.forward is not trainer.model
    state = trainer.fit()
    assert state.epoch == 1
    trainer.checkpoint(tmp_path / "last")
    model = small_cnn(width=8)
    load_checkpoint(tmp_path / "last", model)  # no _orig_mod. prefixes in the weights
    assert torch.equal(model.fc.weight, trainer.model.fc.weight.detach())


def test_model_ema_by_hand() -> None:
    from cnnlab.train.engine import ModelEMA

    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(model, decay=0.9)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(3.0)
    ema.update(model)
    torch.testing.assert_close(ema.module[0].weight, start + 0.1)  # 0.9 * old + 0.1 * new
    assert torch.equal(ema.module[1].running_mean, torch.full((2,), 3.0))  # statistics are copied
    assert not any(p.requires_grad for p in ema.module.parameters())


@pytest.mark.gpu
def test_resident_steps_never_sync_the_host(digits) -> None:
    train, val = digits
    recipe = load_recipe("digits", ["epochs=1", "precision=bf16", "ema_decay=0.99", "optim.grad_clip=1.0",
                                    "augment.flip=true", "augment.crop_padding=2", "augment.cutout=3"])
    trainer = Trainer(small_cnn(width=8), recipe, train, val, device=torch.device("cuda"))
    trainer._train_epoch()  # warm-up: first-call allocations and cuDNN choices may sync
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        trainer._train_steps()  # every step of an epoch: a synchronising call would raise here
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_batch_smaller_than_ranks(digits) -> None:
    from cnnlab.train.distributed import Distributed

    train, val = digits
    recipe = load_recipe("default", ["batch_size=1"])
    with pytest.raises(CnnlabError, match="batch_size 1 is smaller than the 2 processes"):
        Trainer(small_cnn(width=8), recipe, train, val, dist=Distributed(rank=0, world_size=2))


def test_explicit_inplace_false_is_kept() -> None:
    from functools import partial

    from cnnlab.nn import ConvNormAct

    assert ConvNormAct(2, 2, act_layer=partial(nn.ReLU, inplace=False)).act.inplace is False
    assert ConvNormAct(2, 2).act.inplace is True and ConvNormAct(2, 2, inplace=False).act.inplace is False


def test_tta_views_by_hand() -> None:
    from cnnlab.train.engine import tta_views

    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert len(tta_views(x, "none")) == 1 and len(tta_views(x, "flip")) == 2 and len(tta_views(x, "flip+shift")) == 4
    flip = tta_views(x, "flip")[1]
    assert torch.equal(flip[0, 0, 0], torch.tensor([3.0, 2.0, 1.0, 0.0]))
    down_right, up_left = tta_views(x, "shift")[1:]
    assert down_right[0, 0, 1, 1] == x[0, 0, 0, 0] and up_left[0, 0, 0, 0] == x[0, 0, 1, 1]
    assert down_right[0, 0, 0, 0] == 0 and up_left[0, 0, 3, 3] == 0  # zero borders, as training translations


def test_tta_averages_logits(digits) -> None:
    from cnnlab.train.engine import Normalisation, evaluate

    _, test = digits
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    norm = Normalisation((0.5,), (0.25,))
    plain = evaluate(model, test, norm)
    # A model that sees only a mirror-symmetric sum of the image scores flips exactly as the image.
    symmetric = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        weight = symmetric[1].weight.view(10, 8, 8)
        weight.copy_((weight + weight.flip(2)) / 2)
    assert evaluate(symmetric, test, norm, tta="flip") == pytest.approx(evaluate(symmetric, test, norm))
    assert evaluate(model, test, norm, tta="flip") != pytest.approx(plain)  # averaging changes a non-symmetric one


def test_any_seed_works(digits) -> None:
    _trainer(digits, ["epochs=1", "seed=123456789012"])._train_epoch()  # the augmentation stream stays in range


def test_fused_is_ignored_off_the_gpu(digits) -> None:
    trainer = _trainer(digits, ["epochs=1", "optim.fused=true"])
    assert not trainer.optimizer.defaults.get("fused")
    trainer._train_epoch()
