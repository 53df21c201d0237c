"""Deck 004's CIFAR ablation on its network: base, + BatchNorm, + augmentation, + regularisation, each adding to the one before."""

from __future__ import annotations

from cnnlab.workflows.experiments.base import Arm, Budget, Claim, Experiment

# Deck 004's augmentation: horizontal flips, shifts of up to 5 px, scaling by 0.8-1.2, then the
# centre 32x32 (a no-op on CIFAR's 32-px images, kept because the deck names it).
AUGMENT = ("augment=[{op: flip, p: 0.5}, {op: translate, padding: 5}, {op: scale, min_scale: 0.8, max_scale: 1.2}, "
           "{op: center_crop, size: 32}]")
# Its regularisation: dropout (the model's, before the Linear), L2 on conv and Linear weights only
# (the optimiser never decays biases and norms) and label smoothing.
REGULARISE = ("optim.weight_decay=5e-4", "loss.label_smoothing=0.1")

ABLATION = Experiment(
    name="ablation",
    description="deck 004's CIFAR study: base, + BatchNorm, + augmentation, + regularisation (course_cifar100)",
    data="cifar10",
    recipe="ablation",
    arms=(
        Arm("base", "course_cifar100_nobn"),
        Arm("bn", "course_cifar100"),
        Arm("bn+aug", "course_cifar100", (AUGMENT,)),
        Arm("bn+aug+reg", "course_cifar100_dropout", (AUGMENT, *REGULARISE)),
    ),
    budgets={
        # 100 steps an epoch of 32 from 3,200 images: 6 epochs, 600 steps (19,200 images) per arm,
        # about 100 images/s on 2 cores. Validation keeps 2 % (1,000 images): scoring the deck's 20 %
        # every epoch would take longer than the training.
        "default": Budget(steps=600, train_images=3200, batch_size=32, extra=("data.val_fraction=0.02",)),
        # The deck: all 40,000 images left after the 20 % validation split, 200 epochs of 1,250
        # steps (early stopping may end an arm sooner).
        "full": Budget(steps=250000, train_images=40000, batch_size=32),
    },
    claims=(
        Claim("BatchNorm raises test accuracy over the base network", lambda rows: rows["bn"]["test_top1"] > rows["base"]["test_top1"]),
        Claim("augmentation raises it further (it needs a long budget to show)",
              lambda rows: rows["bn+aug"]["test_top1"] > rows["bn"]["test_top1"]),
        Claim("regularisation raises it further still (it needs a long budget to show)",
              lambda rows: rows["bn+aug+reg"]["test_top1"] > rows["bn+aug"]["test_top1"]),
    ),
)
