"""MNIST time to accuracy: the small BN CNN with the mnist-speed recipe, timed like the CIFAR run.

    python benchmarks/mnist_time_to_accuracy.py --runs 5 [--data-dir ../shared/data]          # 99.0 % target
    python benchmarks/mnist_time_to_accuracy.py --runs 5 epochs=8 tta=shift                  # 99.5 % target

Prints the same JSON as speedrun_cifar10.py. Targets on one H100: mean_acc >= 0.990 in
mean_seconds <= 0.5, and mean_acc >= 0.995 in mean_seconds <= 1.5.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import main  # noqa: E402

if __name__ == "__main__":
    main(__doc__.splitlines()[0], "mnist-time-to-accuracy", recipe="mnist-speed", data="mnist", model="small_cnn")
