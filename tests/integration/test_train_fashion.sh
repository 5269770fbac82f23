#!/usr/bin/env bash
# tests/integration/test_train_fashion.sh - two epochs on Fashion-MNIST (Debian's
# dataset-fashion-mnist) reach a test accuracy above 0.80; the run's best is recorded; the
# built-in name and the directory's path are the same data on resume.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
DATA=/usr/share/datasets/fashion-mnist
if [ ! -e "$DATA/train-images-idx3-ubyte.gz" ] && [ ! -e "$DATA/train-images-idx3-ubyte" ]; then
	skip "$DATA not installed (Debian package dataset-fashion-mnist)"
fi
work=$WORK
$TRAIN --store "$work/s" --layers 784,128,10 --epochs 2 --threads 2 --no-sync >"$work/out" ||
	fail "training failed"
cat "$work/out"
acc=$(sed -n 's/^epoch 2\/2 .*test_acc \([0-9.]*\).*/\1/p' "$work/out")
[ -n "$acc" ] || fail "no test_acc for epoch 2"
awk -v a="$acc" 'BEGIN { exit !(a > 0.80) }' || fail "test accuracy $acc <= 0.80"
$CKPT info "$work/s" | grep -q '^best: epoch-000[12]' || fail "no best recorded"
echo "ok: test accuracy $acc after 2 epochs"

# the built-in name and its directory, with or without a trailing '/', are one data set
common=(--layers 784,16,10 --threads 2 --no-sync --quiet)
$TRAIN --store "$work/spelled" --data "$DATA/" --epochs 1 "${common[@]}" || fail "--data $DATA/"
$TRAIN --store "$work/spelled" --resume --epochs 2 --data fashion-mnist "${common[@]}" ||
	fail "resume with --data fashion-mnist of a run on $DATA/"
$TRAIN --store "$work/s" --resume --epochs 3 --data "$DATA" --threads 2 --no-sync --quiet ||
	fail "resume with --data $DATA of a run on fashion-mnist"
echo "ok: fashion-mnist and $DATA/ are the same data"
