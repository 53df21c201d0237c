#!/usr/bin/env bash
# The checks that need a GPU, in one pass on a lent machine whose Python already holds torch:
#   1. the tests marked gpu (skipped on every CPU machine, CI included);
#   2. the time-to-accuracy benchmarks against their H100 targets (their docstrings);
#   3. the CPU suite with CUDA visible: no test may change its figures when a GPU is present
#      (the suite's conftest sets CNNLAB_DEVICE=cpu, so `auto` stays on the CPU).
# Each step has its own time limit so that one slow step cannot take the others' results with it.
#
#   bash benchmarks/gpu_check.sh DATA_DIR OUT_DIR [SUITE_SECONDS]
#
# DATA_DIR holds ../shared/data's files (MNIST IDX, cifar10-jpeg.tar.gz); OUT_DIR receives one
# text or JSON file per step.
set -u
data=${1:?give the data folder}
out=${2:?give the output folder}
suite_seconds=${3:-240}
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
mkdir -p "$out"

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  lscpu | grep -E '^Model name|^CPU\(s\)'
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"

step() {  # step NAME SECONDS COMMAND...: run one step under its limit, keep its output and exit status
  local name=$1 limit=$2
  shift 2
  local began=$SECONDS
  timeout "$limit" "$@" > "$out/$name" 2>> "$out/stderr.txt"
  echo "step $name: exit $? after $((SECONDS - began)) s" | tee -a "$out/steps.txt"
}

step gpu_tests.txt 150 python3 -m pytest -q -m gpu -p no:cacheprovider -rs
tail -15 "$out/gpu_tests.txt"
step speedrun_cifar10.json 200 python3 benchmarks/speedrun_cifar10.py --runs 10 --data-dir "$data"
cat "$out/speedrun_cifar10.json"
step mnist_99.json 80 python3 benchmarks/mnist_time_to_accuracy.py --runs 5 --data-dir "$data"
cat "$out/mnist_99.json"
# loadfile: a module's tests share one worker (the README's examples run in order in one folder);
# two threads each, so that 16 workers do not crowd 16 cores.
step suite.txt "$suite_seconds" env OMP_NUM_THREADS=2 python3 -m pytest -v -n 16 --dist loadfile \
  -m "not slow and not gpu" -p no:cacheprovider
grep -E "^(FAILED|ERROR)" "$out/suite.txt"
tail -3 "$out/suite.txt"
tail -30 "$out/stderr.txt"
