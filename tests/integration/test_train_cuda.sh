#!/usr/bin/env bash
# tests/integration/test_train_cuda.sh - --device cuda from the command line, on any machine.
# Without a usable GPU (or without the CUDA plug-in): exit 1, one 'ckpt-train: error:' line
# naming the device, no store created, an existing store byte-for-byte unchanged (also on
# --resume), and a malformed device name refused before anything else. With a GPU: a short
# cuda run agrees with the cpu run from the same seed and records its tensors as cuda:0
# (tests/gpu/run.sh does the full GPU checks).
set -uo pipefail
cd "$(dirname "$0")/../.."
TRAIN=build/bin/ckpt-train CKPT=build/bin/ckpt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
common=(--data synthetic --layers 24,16,4 --val-split 2000 --batch-size 50 --threads 1 --no-sync --quiet)

for dev in cuda: cuda:x cuda:-1 cuda:01 cuda:128 gpu; do
	$TRAIN --store "$work/bad" --device "$dev" "${common[@]}" 2>"$work/err"
	rc=$?
	[ $rc -ne 0 ] || fail "--device $dev accepted"
	[ "$(wc -l <"$work/err")" -eq 1 ] || fail "--device $dev: stderr is not one line"
	grep -q "^ckpt-train: error: unknown device '$dev'" "$work/err" ||
		fail "--device $dev: $(cat "$work/err")"
	[ ! -e "$work/bad" ] || fail "--device $dev created a store"
done
echo "ok: malformed device names are refused"

if $TRAIN --store "$work/probe" --device cuda --epochs 1 "${common[@]}" 2>"$work/err"; then
	gpu=1
else
	gpu=0
	grep -q "no CUDA device\|no CUDA driver found\|not supported by this build" "$work/err" ||
		fail "no GPU, but the message does not say so: $(cat "$work/err")"
	# the real plug-in on a machine without the NVIDIA driver names the driver, not cudart's
	# "CUDA driver version is insufficient for CUDA runtime version"
	if [ -e build/lib/ckpt-train-cuda.so ] && ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
		grep -q "no CUDA driver found (libcuda.so.1 missing, or older than this build's CUDA [0-9.]* runtime)" "$work/err" ||
			fail "no driver, but the message does not say so: $(cat "$work/err")"
	fi
	[ ! -e "$work/probe" ] || fail "--device cuda without a GPU created a store"
	for dev in cuda cuda:0 cuda:3; do
		$TRAIN --store "$work/none" --device $dev "${common[@]}" 2>"$work/err"
		rc=$?
		[ $rc -eq 1 ] || fail "--device $dev without a GPU: exit $rc, expected 1"
		[ "$(wc -l <"$work/err")" -eq 1 ] || fail "--device $dev: stderr is not one line"
		grep -q "^ckpt-train: error: device $dev is not supported" "$work/err" ||
			fail "--device $dev: $(cat "$work/err")"
		[ ! -e "$work/none" ] || fail "--device $dev created a store"
	done
	# an existing store is not touched, neither by a new run nor by --resume
	$TRAIN --store "$work/cpu" --epochs 2 "${common[@]}" || fail "cpu run"
	# data.mdb: the store; lock.mdb is LMDB's reader table, which every reader (ckpt info too) updates
	before=$(sha256sum <"$work/cpu/data.mdb")
	$TRAIN --store "$work/cpu" --resume --epochs 3 --device cuda --threads 1 --quiet \
		2>"$work/err" && fail "--resume --device cuda without a GPU succeeded"
	grep -q "device cuda is not supported" "$work/err" || fail "resume: $(cat "$work/err")"
	[ "$(wc -l <"$work/err")" -eq 1 ] || fail "resume --device cuda: stderr is not one line: $(cat "$work/err")"
	$TRAIN --store "$work/cpu" --epochs 3 --device cuda "${common[@]}" 2>/dev/null &&
		fail "--device cuda on an existing store succeeded"
	[ "$(sha256sum <"$work/cpu/data.mdb")" = "$before" ] || fail "the store changed"
	echo "ok: --device cuda without a GPU: one line, exit 1, stores untouched ($(cut -c1-110 "$work/err"))"
	echo "SKIP: the cuda-vs-cpu run needs a GPU (tests/gpu/run.sh)"
	exit 0
fi

# a GPU: same seed on cpu and cuda, over 4 steps (9800 of the 10000 samples validate): GEMM
# summation order differs between OpenBLAS and cuBLAS, and over a whole epoch such differences
# grow (tests/gpu/README.md); after a few steps they stay at float rounding
$CKPT show "$work/probe" 1 | grep -q "cuda:0" || fail "cuda run does not record cuda:0"
$TRAIN --store "$work/cpu" --epochs 1 "${common[@]}" --val-split 9800 || fail "cpu run"
$TRAIN --store "$work/cuda" --device cuda --epochs 1 "${common[@]}" --val-split 9800 || fail "cuda run"
python3 - "$work/cpu" "$work/cuda" <<'PY' || fail "cpu and cuda disagree"
import subprocess, sys, numpy as np, io
def load(store, name):
    raw = subprocess.run(["build/bin/ckpt", "cat", store, f"epoch-0001/model/{name}.npy"],
                         check=True, capture_output=True).stdout
    return np.load(io.BytesIO(raw))
worst = max(float(np.abs(load(sys.argv[1], n) - load(sys.argv[2], n)).max())
            for n in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"))
print(f"cuda vs cpu after 4 steps: max |difference| {worst:.3g}")
sys.exit(0 if worst < 1e-5 else 1)
PY
echo "ok: cuda and cpu runs agree"
