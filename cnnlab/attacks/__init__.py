"""Adversarial examples: FGSM and PGD (L-inf and L2, untargeted or targeted, random start).

Attacks work in pixel space: images in [low, high] (default [0, 1]), the model's normalisation
given as `mean` / `std` and applied inside, every step clipped to the valid range. They need
gradients only, so they sit below `train` (adversarial training can use them). The model runs in
the mode it is given; no parameter gradient is accumulated (only the input's is taken).
"""

from cnnlab.attacks.gradient import AttackResult, fgsm, pgd, robust_accuracy

__all__ = ["AttackResult", "fgsm", "pgd", "robust_accuracy"]
