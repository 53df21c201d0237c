"""FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018) in pixel space, chunked over images."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import CnnlabError


def _normaliser(mean: Sequence[float] | None, std: Sequence[float] | None, like: torch.Tensor):  # noqa: ANN202
    if mean is None and std is None:
        return lambda x: x
    channels = like.shape[1]
    m = torch.as_tensor(mean if mean is not None else (0.0,) * channels, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std if std is not None else (1.0,) * channels, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
    return lambda x: (x - m) / s


def _check(images: torch.Tensor, eps: float, low: float, high: float) -> None:
    if eps < 0:
        raise CnnlabError(f"eps must be >= 0, got {eps}")
    if images.ndim != 4 or not images.is_floating_point():
        raise CnnlabError(f"attacks take float pixel images (N, C, H, W) in [{low}, {high}], got {tuple(images.shape)} {images.dtype}")
    if images.min() < low - 1e-6 or images.max() > high + 1e-6:
        raise CnnlabError(f"images lie in [{float(images.min()):.3g}, {float(images.max()):.3g}], outside [{low}, {high}]: "
                          "attack pixel images and pass the normalisation as mean and std")


def _input_gradient(model: nn.Module, normalise, x: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:  # noqa: ANN001
    """Return the gradient of the loss the attack ascends: CE to the true label, or minus CE to the target."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(normalise(x)), labels.long(), reduction="sum")  # per pixel for (N, H, W) masks
        (grad,) = torch.autograd.grad(-loss if targeted else loss, x)
    return grad


def _l2(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)


def fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, *, targeted: bool = False,
         mean: Sequence[float] | None = None, std: Sequence[float] | None = None, low: float = 0.0, high: float = 1.0,
         batch_size: int = 256, validate: bool = True) -> torch.Tensor:
    """Return x + eps sign(grad of the loss), clipped to [low, high] (targeted: a step down the target's loss).

    `validate=False` skips the range check (a host sync): the training loop's own batches need none.
    """
    if validate:
        _check(images, eps, low, high)
    normalise = _normaliser(mean, std, images)
    out = []
    for start in range(0, len(images), batch_size):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        out.append((x + eps * _input_gradient(model, normalise, x, y, targeted).sign()).clamp(low, high).detach())
    return torch.cat(out)


def pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float, *, steps: int = 10,
        step_size: float | None = None, norm: str = "linf", random_start: bool = True, targeted: bool = False,
        seed: int = 0, mean: Sequence[float] | None = None, std: Sequence[float] | None = None, low: float = 0.0,
        high: float = 1.0, batch_size: int = 256, validate: bool = True) -> torch.Tensor:
    """Return projected-gradient-descent adversarial images within the eps ball (L-inf or L2) and [low, high].

    The default step is 2.5 eps / steps (Madry et al. 2018), so the walk can cross the ball.
    """
    if validate:
        _check(images, eps, low, high)
    if norm not in ("linf", "l2"):
        raise CnnlabError(f"unknown norm {norm!r}: choose linf or l2")
    if steps < 1:
        raise CnnlabError(f"pgd needs steps >= 1, got {steps}")
    alpha = 2.5 * eps / steps if step_size is None else step_size
    normalise = _normaliser(mean, std, images)
    start_at = torch.zeros_like(images)
    if random_start and eps > 0:
        # Drawn for all images at once (one image-sized tensor), so the chunk size changes nothing.
        generator = torch.Generator(device=images.device).manual_seed(seed)
        if norm == "linf":
            start_at = (torch.rand(images.shape, generator=generator, device=images.device, dtype=images.dtype) * 2 - 1) * eps
        else:  # uniform in the L2 ball: a random direction, a radius with density r^(d-1)
            direction = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
            radius = torch.rand((len(images), 1, 1, 1), generator=generator, device=images.device, dtype=images.dtype)
            start_at = direction / _l2(direction) * eps * radius ** (1.0 / images[0].numel())
    out = []
    for start in range(0, len(images), batch_size):
        x0, y = images[start:start + batch_size], labels[start:start + batch_size]
        x = (x0 + start_at[start:start + batch_size]).clamp(low, high)
        for _ in range(steps):
            grad = _input_gradient(model, normalise, x, y, targeted)
            if norm == "linf":
                x = x + alpha * grad.sign()
                x = torch.minimum(torch.maximum(x, x0 - eps), x0 + eps)
            else:
                x = x + alpha * grad / _l2(grad)
                delta = x - x0
                x = x0 + delta * (eps / _l2(delta)).clamp(max=1.0)
            x = x.clamp(low, high).detach()
        out.append(x)
    return torch.cat(out)


@dataclass(frozen=True)
class AttackResult:
    """Accuracy of a model under one attack at one eps."""

    method: str
    eps: float
    accuracy: float
    fooled: torch.Tensor  # bool (N,): the prediction on the adversarial image is wrong


@torch.no_grad()
def _predict(model: nn.Module, normalise, x: torch.Tensor, batch_size: int) -> torch.Tensor:  # noqa: ANN001
    return torch.cat([model(normalise(x[i:i + batch_size])).argmax(1) for i in range(0, len(x), batch_size)])


def robust_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, method: str, eps_list: Sequence[float],
                    *, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                    batch_size: int = 256, **options: object) -> list[AttackResult]:
    """Return the untargeted accuracy under `method` (fgsm or pgd) at each eps: robust accuracy against eps."""
    if method not in ("fgsm", "pgd"):
        raise CnnlabError(f"unknown attack {method!r}: choose fgsm or pgd")
    normalise = _normaliser(mean, std, images)
    results = []
    for eps in eps_list:
        attack = fgsm if method == "fgsm" else pgd
        adversarial = attack(model, images, labels, float(eps), mean=mean, std=std, batch_size=batch_size, **options)  # type: ignore[arg-type]
        predicted = _predict(model, normalise, adversarial, batch_size)
        correct = predicted == labels
        results.append(AttackResult(method, float(eps), float(correct.float().mean()), ~correct))
    return results
