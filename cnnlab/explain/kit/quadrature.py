"""Quadrature rules for path integrals (Integrated Gradients): nodes in [0, 1] and weights summing to 1."""

from __future__ import annotations

import torch

from cnnlab.errors import CnnlabError


def gauss_legendre(steps: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return Gauss-Legendre nodes in (0, 1) and their weights (summing to 1) for `steps` points."""
    import numpy as np

    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (torch.tensor((nodes + 1) / 2, device=device, dtype=torch.float32),
            torch.tensor(weights / 2, device=device, dtype=torch.float32))


def riemann(steps: int, device: torch.device, rule: str = "trapezoid") -> tuple[torch.Tensor, torch.Tensor]:
    """Return Riemann nodes in [0, 1] and weights summing to 1: left, right, middle or trapezoid."""
    if rule == "trapezoid":
        if steps < 2:
            raise CnnlabError("the trapezoid rule needs steps >= 2")
        nodes = torch.linspace(0, 1, steps, device=device)
        weights = torch.full((steps,), 1 / (steps - 1), device=device)
        weights[0] = weights[-1] = 0.5 / (steps - 1)
        return nodes, weights
    offset = {"left": 0.0, "right": 1.0, "middle": 0.5}.get(rule)
    if offset is None:
        raise CnnlabError(f"unknown Riemann rule {rule!r}: choose left, right, middle or trapezoid")
    return (torch.arange(steps, device=device) + offset) / steps, torch.full((steps,), 1 / steps, device=device)

