#!/usr/bin/env bash
# tests/integration/test_train_lock.sh - one ckpt-train writes a store at a time: while a run
# trains into a store, a second ckpt-train on it (a fresh start or --resume) is refused with one
# error line and exit 1, and the store keeps the first run's checkpoints only; readers (ckpt
# log/verify) still work; once the first run has stopped, --resume continues it.
. "$(dirname "$0")/lib.sh"
need_built "$TRAIN" "$CKPT"
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	lib_cleanup
}
trap cleanup EXIT
common=(--data synthetic --layers 24,16,4 --val-split 2000 --batch-size 50 --threads 1 --no-sync)
store="$WORK/run with space"

$TRAIN --store "$store" --epochs 100000 --quiet "${common[@]}" 2>"$WORK/a.err" &
pid=$!
logged_epochs() { [ "$($CKPT log "$store" 2>/dev/null | wc -l)" -gt "$1" ]; } # + a header line
wait_until 30 "$pid" logged_epochs 2 || fail "first run wrote no epoch: $(cat "$WORK/a.err")"
# the process keeps its name (ps, pgrep -x ckpt-train), also after choosing BLAS kernels by
# re-executing itself
[ "$(cat "/proc/$pid/comm")" = ckpt-train ] || fail "process name: $(cat "/proc/$pid/comm")"

for args in "--resume --epochs 2" "--resume best --epochs 100000" "--epochs 5 ${common[*]}"; do
	# shellcheck disable=SC2086
	$TRAIN --store "$store" $args --quiet >"$WORK/b.out" 2>"$WORK/b.err"
	rc=$?
	[ "$rc" -eq 1 ] || fail "second ckpt-train ($args) while the first trains: exit $rc, want 1"
	[ "$(wc -l <"$WORK/b.err")" -eq 1 ] || fail "not one error line: $(cat "$WORK/b.err")"
	case $args in
	--resume*) grep -q "store $store is in use by another ckpt-train" "$WORK/b.err" ||
		fail "unclear message: $(cat "$WORK/b.err")" ;;
	esac
done
$CKPT verify "$store" >/dev/null || fail "ckpt verify while training"

kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 143 ] || fail "first run: exit $rc after SIGTERM, want 143"
last=$($CKPT info "$store" | sed -n 's/^latest: epoch-0*//p')
[ -n "$last" ] || fail "no latest epoch after the first run"
$TRAIN --store "$store" --resume --epochs $((last + 1)) --quiet ||
	fail "resume after the first run stopped"
[ "$($CKPT info "$store" | sed -n 's/^latest: epoch-0*//p')" = $((last + 1)) ] ||
	fail "resume did not reach epoch $((last + 1))"
$CKPT verify "$store" >/dev/null || fail "ckpt verify after resume"
echo "ok: a second ckpt-train on a store in use is refused; resume works once it stopped"

# four runs started at once into one empty directory: one creates the store and trains, the
# others are refused in one line; nothing is lost (a create took another's fresh environment
# for a killed create's remnant and removed it: a run exited 0 and left no data.mdb)
for round in 1 2 3; do
	rm -rf "$WORK/race"
	mkdir "$WORK/race"
	pids=()
	for i in 1 2 3 4; do
		$TRAIN --store "$WORK/race" --data synthetic --layers 784,16,10 --epochs 2 --quiet \
			2>"$WORK/race.err$i" &
		pids+=($!)
	done
	ok=0
	for i in 1 2 3 4; do
		if wait "${pids[$((i - 1))]}"; then
			ok=$((ok + 1))
		else
			[ "$(wc -l <"$WORK/race.err$i")" -eq 1 ] || fail "a refused racing run: $(cat "$WORK/race.err$i")"
		fi
	done
	[ $ok -eq 1 ] || fail "round $round: $ok of 4 racing runs succeeded"
	[ "$($CKPT info "$WORK/race" | sed -n 's/^checkpoints: //p')" = 2 ] ||
		fail "round $round: the winner's checkpoints are not all there: $($CKPT info "$WORK/race" 2>&1 | head -3)"
done
echo "ok: of four runs racing to create one store, one trains and the others are refused"
