#!/usr/bin/env bash
# tests/bench/bench_train.sh - ckpt-train epoch time vs PyTorch and vs the GEMM-bound limit,
# and the test accuracy of a 15-epoch run.
#
# Both sides: --layers 784,256,128,10, batch 128, SGD (lr 0.1, momentum 0.9), Fashion-MNIST
# (55000 training, 5000 validation, 10000 test samples), the same thread count, validation and
# test passes included in the epoch time; runs alternate (GEMM limit, ckpt-train, torch, GEMM
# limit, ...) and medians are compared. The GEMM limit is the epoch's sgemm calls timed alone
# (build/tests/tools/train_gemm, best of 3) in this same run. Environment: BENCH_RUNS (default 3),
# BENCH_THREADS (default 2), BENCH_ACC_EPOCHS (default 15), TORCH_PYTHON (/usr/bin/python3).
set -uo pipefail
cd "$(dirname "$0")/../.."
DATA=/usr/share/datasets/fashion-mnist
RUNS=${BENCH_RUNS:-3}
THREADS=${BENCH_THREADS:-2}
ACC_EPOCHS=${BENCH_ACC_EPOCHS:-15}
PY=${TORCH_PYTHON:-/usr/bin/python3}
LAYERS=784,256,128,10
TRAIN=build/bin/ckpt-train
if [ ! -e "$DATA/train-images-idx3-ubyte.gz" ] && [ ! -e "$DATA/train-images-idx3-ubyte" ]; then
	echo "bench_train: skipped ($DATA not installed: Debian package dataset-fashion-mnist)"
	exit 0
fi
make -s --no-print-directory build/bin/ckpt-train build/tests/tools/train_gemm || exit 1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# the BLAS kernels ckpt-train picks (it re-executes with OPENBLAS_CORETYPE on CPUs that
# OpenBLAS 0.3.21 does not know); torch gets the same so neither side is handicapped
gemm=$(build/tests/tools/train_gemm $LAYERS 128 55000 15000 "$THREADS") || exit 1
core=$(sed -n 's/.* core \([A-Za-z0-9]*\).*/\1/p' <<<"$gemm")
have_torch=1
"$PY" -c 'import torch' 2>/dev/null || have_torch=0

ours=() theirs=() limits=()
for r in $(seq 1 "$RUNS"); do
	g=$(build/tests/tools/train_gemm $LAYERS 128 55000 15000 "$THREADS") || exit 1
	limits+=("$(awk '{ print $4 }' <<<"$g")")
	out=$($TRAIN --store "$work/run$r" --layers $LAYERS --batch-size 128 --optimizer sgd --lr 0.1 \
		--momentum 0.9 --epochs 1 --threads "$THREADS" --seed "$r") || exit 1
	ours+=("$(sed -n 's/^epoch 1\/1 .*  \([0-9.]*\)s  .*/\1/p' <<<"$out")")
	rm -rf "$work/run$r"
	if [ $have_torch = 1 ]; then
		t=$(OPENBLAS_CORETYPE=$core "$PY" tests/bench/train_torch_peer.py "$DATA" $LAYERS 128 \
			"$THREADS" 5000) || exit 1
		theirs+=("$(sed -n 's/^epoch_seconds \([0-9.]*\).*/\1/p' <<<"$t")")
	fi
	if [ $have_torch = 1 ]; then
		echo "run $r: GEMM limit ${limits[-1]} s, ckpt-train ${ours[-1]} s, pytorch ${theirs[-1]} s"
	else
		echo "run $r: GEMM limit ${limits[-1]} s, ckpt-train ${ours[-1]} s"
	fi
done
ours_med=$(printf '%s\n' "${ours[@]}" | median)
read -r _ flops _ _ _ _ _ <<<"$gemm"
limit=$(printf '%s\n' "${limits[@]}" | median)
gflops=$(awk -v f="$flops" -v s="$limit" 'BEGIN { printf "%.1f", f / s / 1e9 }')
echo "threads: $THREADS   BLAS kernels: $core   sgemm over the epoch's shapes (median): $gflops GFLOP/s"
echo "epoch GEMM work: $(awk -v f="$flops" 'BEGIN { printf "%.1f", f / 1e9 }') GFLOP -> GEMM-bound limit $limit s"
echo "ckpt-train epoch (median of $RUNS): $ours_med s = $(awk -v a="$ours_med" -v b="$limit" 'BEGIN { printf "%.2f", a / b }')x the GEMM limit"
if [ $have_torch = 1 ]; then
	theirs_med=$(printf '%s\n' "${theirs[@]}" | median)
	echo "pytorch $("$PY" -c 'import torch; print(torch.__version__)') epoch (median of $RUNS): $theirs_med s"
	echo "ratio pytorch / ckpt-train: $(awk -v a="$theirs_med" -v b="$ours_med" 'BEGIN { printf "%.1f", a / b }')x"
else
	echo "pytorch: not available ($PY cannot import torch)"
fi

# accuracy: 15 epochs, cosine learning-rate schedule
out=$($TRAIN --store "$work/acc" --layers $LAYERS --batch-size 128 --optimizer sgd --lr 0.1 \
	--momentum 0.9 --lr-schedule cosine --epochs "$ACC_EPOCHS" --threads "$THREADS") || exit 1
acc=$(sed -n "s/^epoch $ACC_EPOCHS\/$ACC_EPOCHS .*test_acc \([0-9.]*\).*/\1/p" <<<"$out")
best=$(build/bin/ckpt info "$work/acc" | sed -n 's/^best: //p')
echo "accuracy: $ACC_EPOCHS epochs (sgd 0.1, momentum 0.9, cosine): final test_acc $acc (goal >= 0.885); best by val_loss: $best"
