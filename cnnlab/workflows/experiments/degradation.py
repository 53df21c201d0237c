"""He et al. 2016a's degradation problem: deeper plain networks train worse; residual ones do not (Fig. 1, Fig. 6)."""

from __future__ import annotations

from cnnlab.workflows.experiments.base import Arm, Budget, Claim, Experiment

DEGRADATION = Experiment(
    name="degradation",
    description="plain and residual CIFAR networks of 20 and 56 layers at equal steps (He et al. 2016a, Fig. 1 and 6)",
    data="cifar10",
    recipe="degradation",
    arms=(Arm("plain20", "plain20"), Arm("plain56", "plain56"), Arm("resnet20", "resnet20"), Arm("resnet56", "resnet56")),
    budgets={
        # 50 steps an epoch: 250 steps are 5 epochs of 6,400 images (about 2 x 4 min for the 56-layer arms on 2 cores).
        "default": Budget(steps=250, train_images=6400),
        # He et al.: 64k steps of 128 on 45k images (164 epochs) with the rate divided at 32k and 48k steps.
        "full": Budget(steps=64000, train_images=45000),
    },
    claims=(
        Claim("the plain 56-layer network ends with a higher training loss than the plain 20-layer one (Fig. 1)",
              lambda rows: rows["plain56"]["train_loss"] > rows["plain20"]["train_loss"]),
        Claim("with shortcuts the 56-layer network trains to a lower loss than without (Fig. 6)",
              lambda rows: rows["resnet56"]["train_loss"] < rows["plain56"]["train_loss"]),
    ),
)
