"""CIFAR-10 time to accuracy: speednet with the speedrun recipe, timed like the public record.

    python benchmarks/speedrun_cifar10.py --runs 10 [--epochs E] [--data-dir ../shared/data]

Prints JSON with mean_acc, std_acc, mean_seconds, runs, device, torch (and load_seconds for
reading the data from disk, which the timed span excludes). Target on one H100 with the JPEG
CIFAR-10 of ../shared/data: mean_acc >= 0.907 over >= 10 runs in mean_seconds <= 1.55.
See benchmarks/timing.py for exactly what the clock counts.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import main  # noqa: E402

if __name__ == "__main__":
    main(__doc__.splitlines()[0], "speedrun-cifar10", recipe="speedrun", data="cifar10", model="speednet")
