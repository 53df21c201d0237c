"""Yosinski et al. 2014 on MNIST: transfer the first n layers from digits 0-4 to 5-9, frozen or fine-tuned, for each n."""

from __future__ import annotations

from typing import Any

from cnnlab.workflows.experiments.base import Arm, Budget, Claim, Experiment

STAGES = ("conv1", "conv2", "fc1", "fc2")  # LeNet-5's layers below the head, input to output


def _arms() -> tuple[Arm, ...]:
    arms = [Arm("baseA", "lenet5", spec_modifiers="@0-4"), Arm("baseB", "lenet5", spec_modifiers="@5-9")]
    for n, stage in enumerate(STAGES, start=1):
        copy = (f"paradigm.finetune.layers={n}",)
        arms.append(Arm(f"A{n}B", "lenet5", (*copy, f"paradigm.finetune.freeze_until={stage}"), "@5-9", "baseA"))
        arms.append(Arm(f"A{n}B+", "lenet5", copy, "@5-9", "baseA"))
    return tuple(arms)


def _fine_tuned_keeps_up(rows: dict[str, dict[str, Any]]) -> bool:
    """Return whether every fine-tuned transfer scores at least base B less half a point (their Fig. 2: AnB+ >= baseB)."""
    return all(rows[f"A{n}B+"]["test_top1"] >= rows["baseB"]["test_top1"] - 0.005 for n in range(1, len(STAGES) + 1))


TRANSFERABILITY = Experiment(
    name="transferability",
    description="LeNet-5 layers 1-4 moved from MNIST digits 0-4 to 5-9, frozen (AnB) or fine-tuned (AnB+) (Yosinski et al. 2014)",
    data="mnist",
    recipe="transferability",
    arms=_arms(),
    budgets={
        # About 27,500 images of five digits after the validation split: 600 steps of 128 from
        # 25,600 of them, 3 epochs, per arm.
        "default": Budget(steps=600, train_images=25600),
        "full": Budget(steps=4000, train_images=25600),
    },
    claims=(
        Claim("fine-tuned transfers (AnB+) do as well as training on 5-9 from scratch, for every n (their Fig. 2)",
              _fine_tuned_keeps_up),
        Claim("frozen transfer degrades as more, and more specific, layers are frozen: A4B below A1B (their Fig. 2)",
              lambda rows: rows["A4B"]["test_top1"] < rows["A1B"]["test_top1"]),
    ),
)
