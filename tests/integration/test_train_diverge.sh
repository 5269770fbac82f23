#!/usr/bin/env bash
# tests/integration/test_train_diverge.sh - a run whose loss grows without bound: the epoch
# lines print huge losses as %.6g (as `ckpt log` does), not as 30 digits and a fraction.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_built "$TRAIN" "$CKPT"
work=$WORK
common=(--data synthetic --layers 24,16,4 --val-split 2000 --batch-size 100 --threads 1 --no-sync)

# step:1:1000 multiplies the rate by 1000 every epoch: the losses pass 1e6 before they overflow
$TRAIN --store "$work/big" "${common[@]}" --epochs 5 --lr 0.1 --lr-schedule step:1:1000 \
	>"$work/out" 2>"$work/err" || fail "growing run: $(cat "$work/err")"
cat "$work/out"
grep -q '^epoch 1/5  step 80  train_loss [0-9]\.[0-9]\{4\}  val_loss [0-9]\.[0-9]\{4\}  val_acc' "$work/out" ||
	fail "an ordinary loss is not printed with 4 decimals: $(cat "$work/out")"
grep -q '^epoch 5/5 .* train_loss [0-9.]*e+[0-9]*  val_loss [0-9.]*e+[0-9]*  val_acc' "$work/out" ||
	fail "huge losses are not printed as %.6g: $(cat "$work/out")"
grep -q 'loss [0-9]\{8\}' "$work/out" && fail "a loss printed with 8 digits or more: $(cat "$work/out")"
echo "ok: huge losses print as %.6g, ordinary ones with 4 decimals"
