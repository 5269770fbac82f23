#!/usr/bin/env bash
# tests/integration/test_store_creating.sh - readers that open a store while ckpt-train creates
# it see the whole store, or none, never a false reason: ckpt_store_create() holds the store
# directory's flock until its store is whole, and a read-only open that found part of one
# waits for that lock and opens again. Each round starts a run and, the moment data.mdb
# appears, three readers at once (a create takes milliseconds, so several rounds). Likewise
# for the removal of a store whose run failed before its first checkpoint.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_built "$TRAIN" "$CKPT"
ROUNDS=${ROUNDS:-15}
store=$WORK/s
false_failures=0

# readers STORE: ckpt info, log and ls of STORE at once; each failure's line into $WORK/errs
readers() {
	local pids=() pid
	"$CKPT" info "$1" >/dev/null 2>"$WORK/e1" & pids+=($!)
	"$CKPT" log "$1" >/dev/null 2>"$WORK/e2" & pids+=($!)
	"$CKPT" ls "$1" >/dev/null 2>"$WORK/e3" & pids+=($!)
	for pid in "${pids[@]}"; do
		wait "$pid" || false_failures=$((false_failures + 1))
	done
	cat "$WORK/e1" "$WORK/e2" "$WORK/e3" >>"$WORK/errs"
}

: >"$WORK/errs"
for ((round = 0; round < ROUNDS; round++)); do
	rm -rf "$store"
	$TRAIN --store "$store" --data synthetic --layers 784,16,10 --epochs 1 --threads 1 \
		--quiet >/dev/null 2>&1 &
	train=$!
	while ! [ -e "$store/data.mdb" ] && kill -0 $train 2>/dev/null; do :; done
	readers "$store"
	wait $train || fail "round $round: ckpt-train failed"
done
[ "$false_failures" -eq 0 ] ||
	fail "$false_failures readers of a store being created failed: $(sort "$WORK/errs" | uniq -c)"

# A run whose first epoch fails (a NaN loss) removes the store it created under the same lock
# (ckpt_store_discard()): readers polling meanwhile open the store, or find an empty directory
# or, where ckpt-train made it, none, never part of a store; nothing stays behind. (An empty
# directory is answered at once, without the lock, so that readers polling a path never hold
# up its create: one made by ckpt-train is seen empty for the moment between the removal of
# the store's files and its own.)
# poll STORE PID N WANT: ckpt info STORE until PID ends; each failure other than WANT (the
# whole stderr line; one of its lines) is appended to $WORK/errs
poll() {
	while kill -0 "$2" 2>/dev/null; do
		"$CKPT" info "$1" >/dev/null 2>"$WORK/p$3" ||
			grep -qxF "$4" "$WORK/p$3" || cat "$WORK/p$3" >>"$WORK/errs"
	done
}
: >"$WORK/errs"
for ((round = 0; round < ROUNDS; round++)); do
	rm -rf "$store"
	given=$((round % 2)) # an empty directory given as --store stays, empty
	[ $given = 0 ] || mkdir "$store"
	$TRAIN --store "$store" --data synthetic --layers 784,16,10 --epochs 1 --threads 1 \
		--lr 1e30 --quiet >/dev/null 2>&1 &
	train=$!
	want="ckpt: error: cannot open store '$store' ($store: not a ckpt store (no data.mdb))"
	[ $given = 1 ] ||
		want+=$'\n'"ckpt: error: cannot open store '$store' ($store: No such file or directory)"
	while ! [ -e "$store/data.mdb" ] && kill -0 $train 2>/dev/null; do :; done
	pollers=()
	for n in 1 2 3; do
		poll "$store" $train $n "$want" &
		pollers+=($!)
	done
	wait $train && fail "round $round: a NaN loss did not fail the run"
	wait "${pollers[@]}"
	if [ $given = 0 ]; then
		[ ! -e "$store" ] || fail "round $round: the failed run left $store: $(ls -A "$store")"
	else
		[ -z "$(ls -A "$store")" ] || fail "round $round: files left in $store: $(ls -A "$store")"
	fi
done
[ ! -s "$WORK/errs" ] ||
	fail "$(wc -l <"$WORK/errs") readers of a store being removed failed: $(sort "$WORK/errs" | uniq -c)"

echo "test_store_creating: ok"
