"""Deck 002's shuffled pixels: an MLP does not care where pixels are; a CNN does, and loses its advantage without their order."""

from __future__ import annotations

from cnnlab.workflows.experiments.base import Arm, Budget, Claim, Experiment

# One seed gives an MLP two equivalent problems: its accuracy moves only by the seed's noise, which
# was about 0.1-0.2 points between seeds of LeNet-5 on MNIST; half a point is the claim's margin.
MLP_MARGIN = 0.005

SHUFFLED_PIXELS = Experiment(
    name="shuffled-pixels",
    description="an MLP and a CNN on MNIST, with and without one fixed pixel permutation (deck 002)",
    data="mnist",
    recipe="shuffled-pixels",
    arms=(
        Arm("mlp", "mlp"),
        Arm("mlp-permuted", "mlp", spec_modifiers="@permuted"),
        Arm("cnn", "lenet5"),
        Arm("cnn-permuted", "lenet5", spec_modifiers="@permuted"),
    ),
    budgets={
        # 422 steps an epoch: 5 epochs of the 54,000 training images, 2,110 steps per arm.
        "default": Budget(steps=2110, train_images=54000),
        "full": Budget(steps=8440, train_images=54000),
    },
    claims=(
        Claim(f"the MLP scores the same with and without the permutation (within {MLP_MARGIN:.1%})",
              lambda rows: abs(rows["mlp"]["test_top1"] - rows["mlp-permuted"]["test_top1"]) < MLP_MARGIN),
        Claim("the CNN beats the MLP on the images as they are",
              lambda rows: rows["cnn"]["test_top1"] > rows["mlp"]["test_top1"]),
        Claim("the permutation costs the CNN its advantage over the MLP",
              lambda rows: rows["cnn-permuted"]["test_top1"] - rows["mlp-permuted"]["test_top1"]
              < rows["cnn"]["test_top1"] - rows["mlp"]["test_top1"]),
    ),
)
