"""The training loop: learning, exact resume, NaN stop, early stopping, augmentation, checkpoints."""

import math

import pytest
import torch
from torch import nn

from cnnlab.data.sources import load
from cnnlab.errors import CnnlabError
from cnnlab.models.small import small_cnn
from cnnlab.runs.checkpoint import load_checkpoint
from cnnlab.runs.recipe import load_recipe
from cnnlab.train.engine import Trainer
from cnnlab.train.state import Callback
from cnnlab.train.tasks import Classification


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

    def on_epoch_end(self, ctx, metrics, is_best) -> None:
        self.rows.append(metrics)


def test_learns_digits(digits) -> None:
    recorder = Recorder()
    state = _trainer(digits, ["epochs=4"], [recorder]).fit()
    assert state.epoch == 4 and state.step == 4 * math.ceil(len(digits[0]) / 64)
    assert recorder.rows[-1].val["acc"] > 0.9 and recorder.rows[-1].val["top5"] >= recorder.rows[-1].val["acc"]


def test_resume_is_exact(digits, tmp_path) -> None:
    overrides = ["epochs=4", "deterministic=true", "ema_decay=0.9", "augment.crop_padding=1"]
    full = _trainer(digits, overrides)
    full_rows = Recorder()
    full.callbacks = [full_rows]
    full.fit()

    first = _trainer(digits, overrides)

    class StopAfterTwo(Callback):
        def on_epoch_end(self, ctx, metrics, is_best) -> None:
            if ctx.state.epoch == 2:
                ctx.state.stop_reason = "interrupted"

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
    assert [r.val for r in rows.rows] == [r.val for r in full_rows.rows[2:]]


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


def test_early_stopping_stops_at_the_exact_epoch(digits) -> None:
    # A learning rate of 1e-30 moves no float32 weight: every epoch validates alike, so the first
    # epoch stays best and patience 2 runs out at the end of epoch 3, no sooner, no later.
    torch.manual_seed(0)
    recipe = load_recipe("default", ["epochs=20", "optim.lr=1e-30", "schedule.name=constant",
                                     "schedule.early_stopping_patience=2"])
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    state = Trainer(model, recipe, *digits).fit()
    assert state.epoch == 3 and state.best_epoch == 1 and state.stale_epochs == 2
    assert state.stop_reason == "early stopping: no better validation score for 2 epochs"


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
    from cnnlab.train.callbacks import ModelEMA

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
    with trainer.session():
        trainer.train_epoch()  # warm-up: first-call allocations and cuDNN choices may sync
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            trainer._steps()  # every step of an epoch: a synchronising call would raise here
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


def test_tta_averages_logits(digits) -> None:
    from cnnlab.data.normalise import Normalisation
    from cnnlab.train.evaluation import evaluate

    _, test = digits
    task = Classification(10)

    def scores(model, tta="none"):
        return evaluate(model, test, norm, task, tta=tta).result()

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    norm = Normalisation((0.5,), (0.25,))
    plain = scores(model)
    # A model that sees only a mirror-symmetric sum of the image scores flips exactly as the image.
    symmetric = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with torch.no_grad():
        weight = symmetric[1].weight.view(10, 8, 8)
        weight.copy_((weight + weight.flip(2)) / 2)
    assert scores(symmetric, "flip") == pytest.approx(scores(symmetric))
    assert scores(model, "flip")["loss"] != pytest.approx(plain["loss"])  # averaging changes a non-symmetric one


def test_any_seed_works_and_repeats_itself(digits) -> None:
    seed = 123456789012  # (seed * 1_000_003 + rank) * 1_000_003 + epoch overflows 63 bits: it is folded back
    runs = []
    for _ in range(2):
        trainer = _trainer(digits, ["epochs=1", f"seed={seed}", "augment.crop_padding=1"])
        with trainer.session():
            runs.append(trainer.train_epoch())
        assert trainer.augment_generator.initial_seed() == (seed * 1_000_003 * 1_000_003) % (1 << 63)
    assert runs[0] == runs[1] and set(runs[0]) == {"loss", "acc"}


def test_fused_is_ignored_off_the_gpu(digits) -> None:
    trainer = _trainer(digits, ["epochs=1", "optim.fused=true"])
    assert not trainer.optimizer.defaults.get("fused")
    assert trainer.fit().step == math.ceil(len(digits[0]) / 64)


def test_fit_restores_the_deterministic_flag(digits) -> None:
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    _trainer(digits, ["epochs=1", "deterministic=true"]).fit()
    assert (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) == before
    broken = _trainer(digits, ["epochs=1", "deterministic=true", "optim.lr=1e30", "optim.momentum=0.0",
                               "optim.nesterov=false"])
    with pytest.raises(CnnlabError, match="NaN"):
        broken.fit()
    assert (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) == before


def test_callbacks_run_in_order_with_a_typed_context(digits) -> None:
    from cnnlab.train.callbacks import EMA, EarlyStopping
    from cnnlab.train.state import Context

    seen = []

    class Spy(Callback):
        order = 7  # between the EMA (5) and early stopping (10)

        def on_fit_start(self, ctx) -> None:
            seen.append(("start", type(ctx), ctx.scored_model is not ctx.model))  # the EMA copy is already set

        def on_epoch_end(self, ctx, metrics, is_best) -> None:
            seen.append(("epoch", ctx.state.epoch, ctx.optimizer is trainer.optimizer, sorted(metrics.row())))

    trainer = _trainer(digits, ["epochs=1", "ema_decay=0.9", "schedule.early_stopping_patience=3"], [Spy()])
    assert [type(c) for c in trainer.callbacks] == [EMA, Spy, EarlyStopping]
    trainer.fit()
    assert seen == [("start", Context, True), ("epoch", 1, True, sorted([
        "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr", "seconds", "images_per_second"]))]


def test_no_validation_split_trains_and_refuses_early_stopping(digits) -> None:
    torch.manual_seed(0)
    recipe = load_recipe("default", ["epochs=2", "batch_size=64", "val_fraction=0"])
    trainer = Trainer(small_cnn(width=8), recipe, digits[0], None)
    state = trainer.fit()
    assert state.epoch == 2 and state.best == {} and state.best_epoch == 0
    with pytest.raises(CnnlabError, match="need a validation split"):
        Trainer(small_cnn(width=8), load_recipe("default", ["schedule.early_stopping_patience=2"]), digits[0], None)


def test_adversarial_training_trains_on_attacks_in_pixel_space(tmp_path) -> None:
    """adversarial.method=pgd: the run completes, the model ends in train mode, and the batches the step sees are attacks."""
    from cnnlab.data.normalise import Normalisation
    from cnnlab.data.sources import load
    from cnnlab.models import create_model
    from cnnlab.runs.recipe import load_recipe
    from cnnlab.train.engine import Trainer

    recipe = load_recipe("digits", ["epochs=1", "adversarial.method=pgd", "adversarial.eps=0.2", "adversarial.steps=3"])
    data = load("digits", None, seed=0).train
    trainer = Trainer(create_model("small_cnn", num_classes=10, in_chans=1), recipe, data, None)
    x = trainer.norm(data.images[:16].to(trainer.device))
    y = data.labels[:16].to(trainer.device)
    adversarial = trainer._adversarial(x, y)
    assert trainer.model.training
    norm: Normalisation = trainer.norm
    std = torch.tensor(norm.std).view(1, -1, 1, 1)
    mean = torch.tensor(norm.mean).view(1, -1, 1, 1)
    moved = ((adversarial - x) * std).abs().amax()
    assert 0 < float(moved) <= 0.2 + 1e-5
    pixels = adversarial * std + mean
    assert float(pixels.min()) >= -1e-6 and float(pixels.max()) <= 1 + 1e-6
    with torch.no_grad():
        trainer.model.eval()
        clean_loss = torch.nn.functional.cross_entropy(trainer.model(x), y)
        attacked_loss = torch.nn.functional.cross_entropy(trainer.model(adversarial), y)
        trainer.model.train()
    assert attacked_loss > clean_loss
    trainer.fit()
