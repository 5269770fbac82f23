#!/usr/bin/env bash
# tests/integration/test_train_diverge.sh - a run whose loss grows without bound: the epoch
# lines print huge losses as %.6g (as `ckpt log` does), not as 30 digits and a fraction; a loss
# that becomes NaN or infinite stops the run with one line whose hint can be followed: a lower
# --lr, a gentler --lr-schedule when a step schedule with GAMMA > 1 has raised the rate, and,
# when the store stays (a resume cannot change either setting), a new --store or removing it.
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

# the rate grows until the loss is no longer finite in epoch 2: the store keeps epoch 1, so the
# hint says to use a new store or remove this one, and names the schedule
store="$work/grow"
$TRAIN --store "$store" "${common[@]}" --quiet --epochs 3 --lr 0.1 --lr-schedule step:1:1e30 \
	2>"$work/err" && fail "a diverging run: exit 0"
[ "$(wc -l <"$work/err")" -eq 1 ] || fail "not one line: $(cat "$work/err")"
grep -q "^ckpt-train: error: training loss became [a-zA-Z]* in epoch 2, batch [0-9]* (try a lower --lr, or a gentler --lr-schedule than step:1:1e+30, in a new --store or after removing this one: the store keeps this run's settings); epoch 2 was not saved, the store ends at epoch 1$" "$work/err" ||
	fail "diverged after a commit: $(cat "$work/err")"
# the hint can be followed: a resume cannot lower the rate, a new run in that store is refused,
# a new store or the store removed work
$TRAIN --store "$store" --resume --epochs 3 --lr 0.01 --quiet 2>/dev/null && fail "a resume took another --lr"
$TRAIN --store "$store" "${common[@]}" --quiet --epochs 3 --lr 0.1 --lr-schedule step:1:0.5 2>/dev/null &&
	fail "a new run in a store that holds one"
$TRAIN --store "$work/new" "${common[@]}" --quiet --epochs 3 --lr 0.1 --lr-schedule step:1:0.5 ||
	fail "the gentler schedule in a new --store"
rm -rf "$store"
$TRAIN --store "$store" "${common[@]}" --quiet --epochs 3 --lr 0.1 --lr-schedule step:1:0.5 ||
	fail "the gentler schedule in the store removed"
[ "$($CKPT info "$store" | sed -n 's/^checkpoints: //p')" = 3 ] || fail "the store removed: not 3 epochs"
# a resume that diverges says the same
$TRAIN --store "$work/res" "${common[@]}" --quiet --epochs 1 --lr 0.1 --lr-schedule step:1:1e30 ||
	fail "one epoch before the growth"
$TRAIN --store "$work/res" --resume --epochs 3 --quiet 2>"$work/err" && fail "a diverging resume: exit 0"
grep -q "in epoch 2, batch [0-9]* (try a lower --lr, or a gentler --lr-schedule than step:1:1e+30, in a new --store or after removing this one: the store keeps this run's settings); epoch 2 was not saved, the store ends at epoch 1$" "$work/err" ||
	fail "diverged on a resume: $(cat "$work/err")"
# nothing committed: the store is removed, so the same command with a lower --lr works; a step
# schedule that has not raised the rate yet is not named
$TRAIN --store "$work/first" "${common[@]}" --quiet --epochs 2 --lr 1e30 --lr-schedule step:5:10 \
	2>"$work/err" && fail "a run diverging in epoch 1: exit 0"
grep -q "^ckpt-train: error: training loss became [a-zA-Z]* in epoch 1, batch [0-9]* (try a lower --lr); nothing was saved$" "$work/err" ||
	fail "diverged before a commit: $(cat "$work/err")"
[ ! -e "$work/first" ] || fail "the store of a run that committed nothing stayed"
echo "ok: a diverged run's hint names what works: a lower --lr or gentler schedule, a new or removed store"
