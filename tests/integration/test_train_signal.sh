#!/usr/bin/env bash
# tests/integration/test_train_signal.sh - SIGTERM/SIGINT during training stop at a batch
# boundary: exit 143/130, a message saying where to resume, no partial epoch, a store that
# verifies, and a resume that goes on from the last finished epoch.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
work=$WORK
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	lib_cleanup
}
trap cleanup EXIT

for sig in TERM INT; do
	store="$work/store $sig it's" # the printed command quotes it for the shell
	$TRAIN --store "$store" --data synthetic --layers 784,256,128,10 --val-split 1000 \
		--batch-size 32 --epochs 1000 --threads 1 >"$work/out" 2>"$work/err" &
	pid=$!
	for _ in $(seq 1 600); do
		grep -q '^epoch 2/' "$work/out" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	grep -q '^epoch 2/' "$work/out" || { cat "$work/err"; fail "training did not reach epoch 2"; }
	kill -$sig "$pid"
	wait "$pid"
	rc=$?
	pid=
	want=$([ $sig = TERM ] && echo 143 || echo 130)
	[ $rc -eq "$want" ] || { cat "$work/err"; fail "SIG$sig: exit $rc, expected $want"; }
	grep -q "interrupted by SIG$sig" "$work/err" || fail "no interruption message: $(cat "$work/err")"
	grep -q -- "--resume" "$work/err" || fail "message does not say how to resume"
	[ "$(wc -l <"$work/err")" -eq 1 ] || fail "stderr is not one line: $(cat "$work/err")"
	# the message names the last committed epoch (a commit may land just before the signal)
	last=$(sed -n 's/.*the store ends at epoch \([0-9]*\).*/\1/p' "$work/err")
	[ -n "$last" ] && [ "$last" -ge 2 ] || fail "message does not name the last epoch: $(cat "$work/err")"
	$CKPT verify "$store" >/dev/null || fail "ckpt verify after SIG$sig"
	info=$($CKPT info "$store") || fail "ckpt info"
	grep -q "^checkpoints: $last\$" <<<"$info" || fail "store has not exactly $last checkpoints: $info"
	grep -q "^latest: epoch-$(printf %04d "$last")\$" <<<"$info" || fail "latest is not $last: $info"
	# the command the message prints works when pasted into a shell (a later --epochs wins)
	cmd=$(sed -n 's/.*continue with: //p' "$work/err")
	[[ $cmd == "ckpt-train --store "*" --resume --epochs 1000" ]] || fail "no command: $(cat "$work/err")"
	ckpt-train() { "$TRAIN" "$@"; }
	eval "$cmd --epochs $((last + 1)) --threads 1 --quiet" || fail "resume after SIG$sig: $cmd"
	$CKPT info "$store" | grep -q "^latest: epoch-$(printf %04d $((last + 1)))\$" ||
		fail "resume did not add epoch $((last + 1))"
	echo "ok: SIG$sig after $last epochs leaves a consistent store"
done
