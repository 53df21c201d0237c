"""How long the command line takes to answer, against a bare `python -c "import torch"`.

Each command runs as a fresh process (cold: a new interpreter, the page cache warm), interleaved
with the peer so that both see the same machine load; the JSON gives the median of --runs each
and the ratio to the peer. Targets (issue 12): `summary resnet50` and `models` within 1.3x of
importing torch; `--version`, `--help` and `arith` without importing torch at all, which a
second pass checks by running each command's main() in a process that then looks at sys.modules.

    python benchmarks/cli_latency.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time

from machine import cpu_name

PEER = [sys.executable, "-c", "import torch"]
TIMED = {
    "summary resnet50": ["summary", "resnet50", "--input", "3x224x224"],
    "models": ["models"],
    "models --format json": ["models", "--format", "json"],
    "--version": ["--version"],
    "arith": ["arith", "conv", "--input", "224", "--kernel", "7", "--stride", "2", "--padding", "same"],
}
TARGETS = {"summary resnet50": 1.3, "models": 1.3}
TORCH_FREE = {"--version": ["--version"], "--help": ["--help"], "arith": TIMED["arith"], "summary --help": ["summary", "--help"]}
PROBE = (
    "import sys\nfrom cnnlab.cli import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
    "sys.stderr.write('TORCH=' + str('torch' in sys.modules))\n"
)


def _cnnlab() -> list[str]:
    """Return the command that starts the installed console script (as a user types it)."""
    found = shutil.which("cnnlab")
    return [found] if found else [sys.executable, "-m", "cnnlab"]


def _seconds(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return elapsed


def _imports_torch(args: list[str]) -> bool:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True)
    return "TORCH=True" in done.stderr


def main() -> None:
    """Print the JSON of the medians, ratios and the torch-free checks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cnnlab = _cnnlab()
    _seconds(PEER)  # one untimed start each: the page cache holds torch's files for all
    for command in TIMED.values():
        _seconds([*cnnlab, *command])
    times: dict[str, list[float]] = {"import torch": [], **{name: [] for name in TIMED}}
    for _ in range(args.runs):  # interleaved: peer, then each command, in every round
        times["import torch"].append(_seconds(PEER))
        for name, command in TIMED.items():
            times[name].append(_seconds([*cnnlab, *command]))
    peer = statistics.median(times["import torch"])
    result = {
        "benchmark": "cli_latency",
        "cpu": cpu_name(),
        "runs": args.runs,
        "peer": "python -c 'import torch'",
        "peer_median_s": round(peer, 3),
        "commands": {
            name: {
                "median_s": round(statistics.median(values), 3),
                "ratio_to_peer": round(statistics.median(values) / peer, 3),
                **({"target_ratio": TARGETS[name], "met": statistics.median(values) / peer <= TARGETS[name]}
                   if name in TARGETS else {}),
            }
            for name, values in times.items() if name != "import torch"
        },
        "imports_torch": {name: _imports_torch(command) for name, command in TORCH_FREE.items()},
    }
    result["all_met"] = all(c.get("met", True) for c in result["commands"].values()) and not any(
        result["imports_torch"].values())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
