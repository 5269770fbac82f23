#!/usr/bin/env bash
# tests/integration/test_train_persist.sh - the background persist of ckpt-train (CPU backend):
# each epoch is snapshotted into a staging slot and committed on a thread while the next epoch
# trains. Checks: a run whose commits overlap training (slowed down with the test knob
# CKPT_TRAIN_TEST_PERSIST_DELAY_MS) gives the same bytes as one without, and resumes
# bit-exactly; SIGTERM and SIGINT while a commit is in flight wait for it (the epoch whose
# commit was running is in the store, the message names it, the store verifies); SIGKILL in
# an open commit loses at most that epoch; a commit that fails (file size limit: EFBIG) stops
# training with one error line naming the epoch, exit 1, earlier epochs intact.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
work=$WORK
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	lib_cleanup
}
trap cleanup EXIT
committed_epoch_1() { grep -q '^epoch 1/' "$work/out"; }
common=(--data synthetic --layers 24,16,4 --val-split 2000 --batch-size 50 --threads 1 --no-sync)

# -- overlapping commits change nothing; resume stays bit-exact ----------------------------
$TRAIN --store "$work/plain" --epochs 4 --quiet "${common[@]}" || fail "plain run"
CKPT_TRAIN_TEST_PERSIST_DELAY_MS=150 $TRAIN --store "$work/slow" --epochs 4 "${common[@]}" \
	>"$work/out" || fail "run with slow commits"
[ "$(grep -c '^epoch [0-9]/4 ' "$work/out")" -eq 4 ] || fail "not one line per epoch: $(cat "$work/out")"
CKPT_TRAIN_TEST_PERSIST_DELAY_MS=150 $TRAIN --store "$work/split" --epochs 2 --quiet \
	"${common[@]}" || fail "first half"
CKPT_TRAIN_TEST_PERSIST_DELAY_MS=150 $TRAIN --store "$work/split" --resume --epochs 4 --quiet \
	--threads 1 || fail "resume"
for e in 1 2 3 4; do
	a=$($CKPT show "$work/plain" $e) || fail "ckpt show plain $e"
	[ "$a" = "$($CKPT show "$work/slow" $e)" ] || fail "epoch $e differs with slow commits"
	[ "$a" = "$($CKPT show "$work/split" $e)" ] || fail "epoch $e differs after resume"
done
echo "ok: background commits give the same checkpoints; resume is bit-exact"

# -- CKPT_TRAIN_BENCH_STATS=1: one line on the commits, and how long training waited ------------
CKPT_TRAIN_BENCH_STATS=1 CKPT_TRAIN_TEST_PERSIST_DELAY_MS=150 $TRAIN --store "$work/stats" \
	--epochs 4 --quiet "${common[@]}" 2>"$work/err" || { cat "$work/err"; fail "run with stats"; }
[ "$(wc -l <"$work/err")" -eq 1 ] || fail "stats: stderr is not one line: $(cat "$work/err")"
waited=$(sed -n 's/^ckpt-train: commit stats: 4 commits of [0-9.]* MB; .* commit \([0-9.]*\) ms (max [0-9.]* ms, [0-9]* MB\/s) on average; the training loop waited \([0-9.]*\) s in all for a commit still running when the next epoch ended (the wait for the last commit not counted)$/\1 \2/p' "$work/err")
[ -n "$waited" ] || fail "stats line: $(cat "$work/err")"
# every commit is held open 150 ms, longer than an epoch here: the ends of epochs 2-4 wait for
# the commits before (up to 0.45 s, less the epochs' own time; the last is waited for outside)
awk -v c="${waited% *}" -v w="${waited#* }" 'BEGIN { exit !(c >= 150 && w >= 0.05 && w <= 2) }' ||
	fail "stats: commit ${waited% *} ms, waited ${waited#* } s: $(cat "$work/err")"
$TRAIN --store "$work/nostats" --epochs 1 --quiet "${common[@]}" 2>"$work/err" || fail "run"
[ ! -s "$work/err" ] || fail "a stats line without CKPT_TRAIN_BENCH_STATS: $(cat "$work/err")"
echo "ok: CKPT_TRAIN_BENCH_STATS=1 counts the commits and the training loop's wait for them"

# -- a signal while a commit is in flight ---------------------------------------------------
for sig in TERM INT; do
	store="$work/sig-$sig"
	CKPT_TRAIN_TEST_PERSIST_DELAY_MS=1500 $TRAIN --store "$store" --epochs 1000 \
		"${common[@]}" >"$work/out" 2>"$work/err" &
	pid=$!
	wait_until 30 "$pid" committed_epoch_1 || { cat "$work/err"; fail "epoch 1 was not committed"; }
	# epoch 2 trains in well under a second, then its commit sleeps 1.5 s before committing
	sleep 0.7
	kill -$sig "$pid"
	wait "$pid"
	rc=$?
	pid=
	want=$([ $sig = TERM ] && echo 143 || echo 130)
	[ $rc -eq "$want" ] || { cat "$work/err"; fail "SIG$sig: exit $rc, expected $want"; }
	[ "$(wc -l <"$work/err")" -eq 1 ] || fail "stderr is not one line: $(cat "$work/err")"
	last=$(sed -n 's/.*the store ends at epoch \([0-9]*\).*/\1/p' "$work/err")
	[ "${last:-0}" -ge 2 ] || fail "SIG$sig: the commit in flight was lost: $(cat "$work/err")"
	grep -q "^epoch $last/" "$work/out" || fail "no line for committed epoch $last"
	$CKPT verify "$store" >/dev/null || fail "ckpt verify after SIG$sig"
	grep -q "^checkpoints: $last\$" <<<"$($CKPT info "$store")" ||
		fail "store does not hold exactly $last checkpoints"
	echo "ok: SIG$sig during a commit waits for it (store ends at epoch $last)"
done

# -- SIGKILL inside an open commit ----------------------------------------------------------
store="$work/kill"
CKPT_TRAIN_TEST_PERSIST_DELAY_MS=3000 $TRAIN --store "$store" --epochs 1000 "${common[@]}" \
	>"$work/out" 2>"$work/err" &
pid=$!
wait_until 30 "$pid" committed_epoch_1 || { cat "$work/err"; fail "kill run: epoch 1 not committed"; }
sleep 0.7
kill -KILL "$pid"
wait "$pid" 2>/dev/null
pid=
$CKPT verify "$store" >/dev/null || fail "ckpt verify after SIGKILL"
grep -q '^checkpoints: 1$' <<<"$($CKPT info "$store")" || fail "SIGKILL: not exactly epoch 1 kept"
$TRAIN --store "$store" --resume --epochs 2 --quiet --threads 1 || fail "resume after SIGKILL"
[ "$($CKPT show "$store" 2)" = "$($CKPT show "$work/plain" 2)" ] ||
	fail "resume after SIGKILL is not bit-exact"
echo "ok: SIGKILL in an open commit loses only that epoch"

# -- a commit that fails stops training ------------------------------------------------------
store="$work/efbig"
# RLIMIT_FSIZE with SIGXFSZ ignored: writes past 1 MiB fail with EFBIG inside a commit
(
	trap '' XFSZ
	ulimit -f 1024
	exec $TRAIN --store "$store" --epochs 200 --layers 24,64,64,4 --data synthetic \
		--val-split 2000 --batch-size 50 --threads 1 --no-sync >"$work/out" 2>"$work/err"
)
rc=$?
[ $rc -eq 1 ] || { cat "$work/err"; fail "a failing commit: exit $rc, expected 1"; }
[ "$(wc -l <"$work/err")" -eq 1 ] || fail "stderr is not one line: $(cat "$work/err")"
grep -q '^ckpt-train: error: .*epoch [0-9]' "$work/err" || fail "error names no epoch: $(cat "$work/err")"
n=$(grep -c '^epoch ' "$work/out")
[ "$n" -ge 1 ] && [ "$n" -lt 200 ] || fail "$n epochs reported before the failure"
$CKPT verify "$store" >/dev/null || fail "ckpt verify after a failed commit"
grep -q "^checkpoints: $n\$" <<<"$($CKPT info "$store")" ||
	fail "store does not hold the $n epochs reported"
echo "ok: a failed commit stops training: $(cut -c1-120 "$work/err")"
