#!/usr/bin/env bash
# tests/gpu/device.sh - everything a GPU machine runs, in one command, within a time budget:
# the GPU (nvidia-smi -L), tests/gpu/run.sh and tests/bench/bench_gpu.sh on the programs of a GPU
# bundle (make gpu-bundle), then a summary of what a report needs: each check's ok/FAIL/SKIP line,
# the max cpu-vs-cuda difference, the stall ratios, epochs/s against PyTorch.
# usage: tests/gpu/device.sh BUNDLE [LOG_DIR]
#   BUNDLE   build/gpu-bundle.tar.xz (or its unpacked directory)
#   LOG_DIR  also write machine.txt, gpu-checks.log, bench-gpu.log and summary.txt there (created
#            if missing)
# Environment: DEVICE_SECONDS (the budget, default 570: the checks get up to 240 of it, the
# benchmark the rest), BENCH_RUNS (default 3), BENCH_GPU_EPOCHS (default 10), PYTHON.
# Exit status: that of the checks (0 all passed, 77 no GPU), or 1 when the benchmark failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
[ $# -ge 1 ] && [ $# -le 2 ] || {
	echo "usage: tests/gpu/device.sh BUNDLE [LOG_DIR]" >&2
	exit 2
}
bundle=$1 logs=${2:-}
[ -e "$bundle" ] || {
	echo "device.sh: $bundle: no such GPU bundle (make gpu-bundle writes build/gpu-bundle.tar.xz)" >&2
	exit 2
}
work=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-device.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ -n "$logs" ]; then
	mkdir -p "$logs" || exit 2
else
	logs=$work
fi
budget=${DEVICE_SECONDS:-570}
start=$(date +%s)
left() { echo $((budget - ($(date +%s) - start))); }

echo "== GPU"
{
	if command -v nvidia-smi >/dev/null; then
		nvidia-smi -L 2>&1 || echo "nvidia-smi -L failed"
		nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max \
			--format=csv,noheader 2>&1 | head -n 1
	else
		echo "no nvidia-smi on this machine"
	fi
	echo "cpu: $(grep -m 1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) CPUs; $(uname -r); glibc $(getconf GNU_LIBC_VERSION | awk '{print $2}')"
	echo "fuse: $([ -c /dev/fuse ] && echo "/dev/fuse present" || echo "no /dev/fuse"); fusermount3: $(command -v fusermount3 || echo "none on the machine (the bundle's)")"
} | tee "$logs/machine.txt"

echo "== checks (tests/gpu/run.sh)"
t=$(left)
[ "$t" -gt 240 ] && t=240
CKPT_GPU_BUNDLE=$bundle timeout -k 10 "$t" bash tests/gpu/run.sh 2>&1 | tee "$logs/gpu-checks.log"
checks=${PIPESTATUS[0]}
[ "$checks" = 124 ] && echo "FAIL: tests/gpu/run.sh ran past its $t s"

bench=0
if [ "$checks" != 77 ]; then
	echo "== benchmark (tests/bench/bench_gpu.sh)"
	t=$(($(left) - 10))
	if [ "$t" -lt 60 ]; then
		echo "SKIP: bench_gpu.sh: only $t s of the budget left"
	else
		CKPT_GPU_BUNDLE=$bundle BENCH_RUNS=${BENCH_RUNS:-3} timeout -k 10 "$t" \
			bash tests/bench/bench_gpu.sh 2>&1 | tee "$logs/bench-gpu.log"
		bench=${PIPESTATUS[0]}
		[ "$bench" = 124 ] && echo "FAIL: bench_gpu.sh ran past the $t s left of the budget (BENCH_RUNS=1 for less)"
	fi
fi

{
		echo "== summary ($(($(date +%s) - start)) s)"
		cat "$logs/machine.txt"
		grep -h -E '^(bundle|python|ok|FAIL|SKIP|gpu checks):' "$logs/gpu-checks.log"
		grep -h -E '^(machine|disk|RESULT|bench_gpu|ckpt-train: error|FAIL|env:|timeout:|  commits)' "$logs/bench-gpu.log" 2>/dev/null
	} | tee "$logs/summary.txt"
	[ "$checks" = 0 ] || exit "$checks"
	[ "$bench" = 0 ] || exit 1
	exit 0
