"""FGSM and PGD by hand on a linear model, their constraints, and agreement with torchattacks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.attacks import fgsm, pgd, robust_accuracy
from cnnlab.errors import CnnlabError


def _linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()


def test_fgsm_by_hand_on_a_linear_model() -> None:
    """For logits W x, d CE / dx = W^T (softmax - onehot): FGSM steps by eps times its sign."""
    model = _linear()
    x = torch.rand(4, 3, 2, 2, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    y = torch.tensor([0, 1, 2, 0])
    w = model[1].weight
    with torch.no_grad():
        p = model(x).softmax(1)
    grad = ((p - torch.nn.functional.one_hot(y, 3)) @ w).view_as(x)
    torch.testing.assert_close(fgsm(model, x, y, 0.1), (x + 0.1 * grad.sign()).clamp(0, 1))
    torch.testing.assert_close(fgsm(model, x, y, 0.1, targeted=True), (x - 0.1 * grad.sign()).clamp(0, 1))
    assert all(p.grad is None for p in model.parameters())


def test_pgd_one_full_step_without_random_start_is_fgsm() -> None:
    model = _linear()
    x = torch.rand(5, 3, 2, 2)
    y = torch.randint(3, (5,))
    torch.testing.assert_close(pgd(model, x, y, 0.05, steps=1, step_size=0.05, random_start=False), fgsm(model, x, y, 0.05))


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_the_ball_and_the_pixel_range_and_hurts_more_than_fgsm(norm: str) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 4)).eval()
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x).argmax(1)  # all correct before the attack
    eps = 0.1 if norm == "linf" else 1.5
    adv = pgd(model, x, y, eps, steps=20, norm=norm, seed=3)
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    size = (adv - x).flatten(1).abs().amax(1) if norm == "linf" else (adv - x).flatten(1).norm(dim=1)
    assert float(size.max()) <= eps + 1e-5
    with torch.no_grad():
        pgd_acc = (model(adv).argmax(1) == y).float().mean()
        fgsm_acc = (model(fgsm(model, x, y, 0.1)).argmax(1) == y).float().mean() if norm == "linf" else 1.0
    assert pgd_acc <= fgsm_acc and pgd_acc < 0.5
    torch.testing.assert_close(pgd(model, x, y, eps, steps=20, norm=norm, seed=3, batch_size=7), adv)  # chunking


def test_targeted_pgd_reaches_the_target_and_normalisation_is_inside() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    x = torch.rand(16, 3, 2, 2)
    target = torch.full((16,), 2)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    adv = pgd(model, x, target, 0.5, steps=40, targeted=True, mean=mean, std=std)
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert (model((adv - m) / s).argmax(1) == 2).float().mean() > 0.9


def test_robust_accuracy_curve_and_errors() -> None:
    model = _linear()
    x = torch.rand(32, 3, 2, 2)
    with torch.no_grad():
        y = model(x).argmax(1)
    curve = robust_accuracy(model, x, y, "pgd", [0.0, 0.05, 0.3], steps=5)
    assert curve[0].accuracy == 1.0 and curve[0].eps == 0.0
    assert curve[0].accuracy >= curve[1].accuracy >= curve[2].accuracy
    assert curve[2].fooled.dtype == torch.bool and curve[2].fooled.shape == (32,)
    with pytest.raises(CnnlabError, match="outside"):
        fgsm(model, x * 10, y, 0.1)
    with pytest.raises(CnnlabError, match="choose fgsm or pgd"):
        robust_accuracy(model, x, y, "cw", [0.1])


def test_agrees_with_torchattacks() -> None:
    """Same eps, steps and step size, no random start: robust accuracy within 0.5 points, outcomes on >= 98 %."""
    torchattacks = pytest.importorskip("torchattacks")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 5 * 5, 10)).eval()
    x = torch.rand(2000, 1, 12, 12, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        y = model(x).argmax(1)
    eps, steps, alpha = 0.02, 10, 0.005
    ours = pgd(model, x, y, eps, steps=steps, step_size=alpha, random_start=False)
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    with torch.no_grad():
        ok_ours, ok_theirs = model(ours).argmax(1) == y, model(theirs).argmax(1) == y
    assert abs(float(ok_ours.float().mean() - ok_theirs.float().mean())) <= 0.005
    assert float((ok_ours == ok_theirs).float().mean()) >= 0.98
    assert 0.05 < float(ok_ours.float().mean()) < 0.95  # mid-range, so agreement means something
    ours_fgsm = fgsm(model, x, y, eps)
    theirs_fgsm = torchattacks.FGSM(model, eps=eps)(x, y)
    torch.testing.assert_close(ours_fgsm, theirs_fgsm, rtol=0, atol=1e-6)
