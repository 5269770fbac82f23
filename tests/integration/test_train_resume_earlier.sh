#!/usr/bin/env bash
# tests/integration/test_train_resume_earlier.sh - a resume from an earlier epoch says which
# stored epochs of the earlier run it replaces and which stay (the stored ones only), and a
# stop in the middle of it prints a true message whose command finishes that work (--resume
# from the epoch this run committed last, --data where the data now lies).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
work=$WORK
pid= # a run in the background, killed if the test fails while it runs
trap '[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null; lib_cleanup' EXIT
ckpt-train() { "$TRAIN" "$@"; }

# --keep-last 2 --keep-top 1 at --lr 1 keeps epochs 2 (best), 5 and 6 of this deterministic run
store=$work/kept
$TRAIN --store "$store" --data synthetic --layers 784,16,10 --val-split 1000 --epochs 6 --threads 1 \
	--no-sync --quiet --keep-last 2 --keep-top 1 --lr 1 || fail "6 epochs"
[ "$($CKPT ls "$store" | grep '^epoch-' | tr '\n' ' ')" = "epoch-0002 epoch-0005 epoch-0006 " ] ||
	fail "expected epochs 2, 5, 6 stored: $($CKPT ls "$store")"
$TRAIN --store "$store" --resume best --epochs 3 --quiet 2>"$work/err" || fail "--resume best --epochs 3"
[ "$(cat "$work/err")" = "ckpt-train: warning: resuming from epoch 2; epochs 5..6 of the earlier run stay in the store (raise --epochs to replace them)" ] ||
	fail "--resume best --epochs 3: $(cat "$work/err")"
# again from 2 (epoch 3 is stored now, and is replaced); epoch 6 stays alone
$TRAIN --store "$store" --resume 2 --epochs 5 --quiet 2>"$work/err" || fail "--resume 2 --epochs 5"
[ "$(sed -n 1p "$work/err")" = "ckpt-train: note: resuming from epoch 2: stored epochs 3 and 5 of the earlier run are replaced as they are trained again" ] &&
	[ "$(sed -n 2p "$work/err")" = "ckpt-train: warning: resuming from epoch 2; epoch 6 of the earlier run stays in the store (raise --epochs to replace it)" ] ||
	fail "--resume 2 --epochs 5: $(cat "$work/err")"
# one checkpoint deleted by a new retention is "1 checkpoint"
$TRAIN --store "$store" --resume 2 --epochs 3 --keep-last 1 >"$work/out" 2>"$work/err" ||
	fail "--resume 2 --keep-last 1: $(cat "$work/err")"
grep -q ": deleted 1 checkpoint$" "$work/out" ||
	fail "retention line: $(cat "$work/out")"
echo "ok: a resume from an earlier epoch names the stored epochs it replaces and those that stay"

# a stop while a resume from epoch 1 retrains the earlier run's epochs: the message names
# what this run committed and what of the earlier run is still stored; its command finishes
# the rewrite (a bare --resume would start from the earlier run's newest epoch: nothing to do)
store=$work/rewrite
$TRAIN --store "$store" --data synthetic --layers 784,64,10 --val-split 1000 --batch-size 32 \
	--epochs 12 --threads 1 --no-sync --quiet || fail "12 epochs"
for when in start epoch2; do
	# commits slowed down: the earlier run's epochs outlast the wait for the marker
	CKPT_TRAIN_TEST_PERSIST_DELAY_MS=400 $TRAIN --store "$store" --resume 1 --epochs 12 \
		--threads 1 --no-sync >"$work/out" 2>"$work/err" &
	pid=$!
	if [ $when = start ]; then
		wait_until 30 "$pid" grep -q '^resuming ' "$work/out"
	else
		wait_until 30 "$pid" grep -q '^epoch 2/12' "$work/out"
	fi || fail "$when: the resume did not get there: $(cat "$work/err")"
	kill -INT "$pid"
	wait "$pid"
	rc=$?
	pid=
	[ $rc -eq 130 ] || fail "$when: exit $rc: $(cat "$work/err")"
	# the note about the epochs it replaces, then the stop
	msg=$(cat "$work/err")
	[ "$(wc -l <"$work/err")" -eq 2 ] || fail "$when: stderr is not two lines: $msg"
	sed -i 1d "$work/err"
	last=$(sed -n 's/.*continue with: ckpt-train --store [^ ]* --resume \([0-9]*\) --epochs 12$/\1/p' "$work/err")
	[ -n "$last" ] || fail "$when: the command does not resume from an epoch: $msg"
	if [ "$last" -eq 1 ]; then
		grep -q "this run resumed from epoch 1 and committed none; epochs 2\.\.12 of the earlier run are still stored: continue" "$work/err"
	else
		grep -q "this run resumed from epoch 1 and committed epoch $last last; epoch[s]* $((last + 1))[.0-9]* of the earlier run [a-z]* still stored: continue" "$work/err"
	fi || fail "$when: message: $msg"
	[ $when = start ] || [ "$last" -ge 2 ] || fail "epoch 2 was printed, yet not named: $msg"
	cmd=$(sed -n 's/.*continue with: //p' "$work/err")
	eval "$cmd --epochs $((last + 1)) --threads 1" >"$work/out" 2>"$work/err" || fail "$when: $cmd: $(cat "$work/err")"
	grep -q "^resuming .* from epoch $last " "$work/out" && grep -q "^epoch $((last + 1))/$((last + 1)) " "$work/out" ||
		fail "$when: the printed command did not go on from epoch $last: $(cat "$work/out")"
	echo "ok: a stop during a resume from an earlier epoch ($when) says where to go on from"
done

# the data moved: a resume given --data NEWPATH and stopped prints a command with that path
python3 - "$work/a b/train.csv" <<'PYEOF' || fail "writing the CSV"
import os, random, sys
os.makedirs(os.path.dirname(sys.argv[1]))
r = random.Random(1)
with open(sys.argv[1], "w") as f:
    for i in range(3000):
        f.write(",".join([str(i % 4)] + [str(r.randrange(256)) for _ in range(20)]) + "\n")
PYEOF
store=$work/moved
$TRAIN --store "$store" --data "$work/a b/train.csv" --layers 20,16,4 --val-split 500 --epochs 1 \
	--threads 1 --no-sync --quiet 2>/dev/null || fail "1 epoch on the CSV"
mv "$work/a b" "$work/c d"
CKPT_TRAIN_TEST_PERSIST_DELAY_MS=400 $TRAIN --store "$store" --resume --epochs 1000 \
	--data "$work/c d/train.csv" --threads 1 --no-sync >"$work/out" 2>"$work/err" &
pid=$!
wait_until 30 "$pid" grep -q '^resuming ' "$work/out" || fail "the moved resume did not start: $(cat "$work/err")"
kill -INT "$pid"
wait "$pid"
rc=$?
pid=
[ $rc -eq 130 ] || fail "moved data: exit $rc: $(cat "$work/err")"
cmd=$(sed -n 's/.*continue with: //p' "$work/err")
[[ $cmd == *" --data '$work/c d/train.csv' "* ]] || fail "moved data: no --data in: $(cat "$work/err")"
last=$(sed -n 's/.*the store ends at epoch \([0-9]*\).*/\1/p' "$work/err")
[ -n "$last" ] || fail "moved data: $(cat "$work/err")"
eval "$cmd --epochs $((last + 1)) --quiet" 2>"$work/err2" ||
	fail "moved data: $cmd: $(cat "$work/err2")"
echo "ok: a stopped resume on moved data prints a command that names where it lies now"
