#!/usr/bin/env bash
# tests/integration/test_reliability_crash.sh - 10 SIGKILL crash trials of ckpt-train (short
# version of tests/reliability/crash_trials.sh; `make test-reliability` runs 200). A failing
# seed is printed: rerun with `tests/reliability/crash_trials.sh --seed S --trials 10`.
set -uo pipefail
cd "$(dirname "$0")/../.."
seed=${CRASH_SEED:-$(date +%s)}
exec bash tests/reliability/crash_trials.sh --trials 10 --epochs 4 --kills 2 --seed "$seed"
