#!/usr/bin/env bash
# tests/integration/test_cli_gc_lock.sh - `ckpt gc` never writes a store that ckpt-train is
# training (the trainer applies its own retention at each commit) nor one a lockless reader
# holds: it is refused in one line naming that process (pid and command), exit 1, retention
# and checkpoints unchanged, with --compact too; once the trainer has stopped, the same gc
# works.
. "$(dirname "$0")/lib.sh"
need_built "$TRAIN" "$CKPT"
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; lib_cleanup' EXIT
store="$WORK/run with space"

$TRAIN --store "$store" --data synthetic --layers 24,16,4 --val-split 2000 --batch-size 50 \
	--threads 1 --no-sync --epochs 100000 --quiet 2>"$WORK/train.err" &
pid=$!
logged_epochs() { [ "$($CKPT log "$store" 2>/dev/null | wc -l)" -gt "$1" ]; } # + a header line
wait_until 30 "$pid" logged_epochs 3 || fail "the run wrote no epochs: $(cat "$WORK/train.err")"

for args in "--keep-last 1" "--keep-last 1 --keep-top 1" ""; do
	# shellcheck disable=SC2086
	$CKPT gc "$store/" $args >"$WORK/gc.out" 2>"$WORK/gc.err"
	rc=$?
	[ "$rc" -eq 1 ] || fail "gc $args while ckpt-train trains: exit $rc, want 1"
	[ "$(wc -l <"$WORK/gc.err")" -eq 1 ] && [ ! -s "$WORK/gc.out" ] ||
		fail "gc $args while training: not one error line: $(cat "$WORK/gc.out" "$WORK/gc.err")"
	grep -qxF "ckpt: error: store $store is being written by pid $pid (ckpt-train); run gc when it stops, or ckpt-train --resume --keep-last N" "$WORK/gc.err" ||
		fail "gc $args while training: unclear message: $(cat "$WORK/gc.err")"
done
$CKPT gc "$store" --keep-last 1 --compact >"$WORK/gc.out" 2>"$WORK/gc.err"
rc=$?
[ "$rc" -eq 1 ] && [ ! -s "$WORK/gc.out" ] &&
	grep -qxF "ckpt: error: gc: compacting $store failed (store $store is being written by pid $pid (ckpt-train); compact it when that ends)" "$WORK/gc.err" ||
	fail "gc --keep-last 1 --compact while training: exit $rc: $(cat "$WORK/gc.out" "$WORK/gc.err")"
kill -TERM "$pid"
wait "$pid"
rc=$?
pid=
[ "$rc" -eq 143 ] || fail "ckpt-train: exit $rc after SIGTERM, want 143"

# nothing of the refused gc took effect: every epoch trained is still there, retention unset
info=$($CKPT info "$store")
last=$(sed -n 's/^latest: epoch-0*//p' <<<"$info")
grep -qxF "checkpoints: $last" <<<"$info" || fail "a refused gc deleted checkpoints: $info"
grep -qxF 'keep-last: 0' <<<"$info" && grep -qxF 'keep-top: 0' <<<"$info" ||
	fail "a refused gc changed the retention: $info"

# a reader without lock.mdb holds a shared lock on data.mdb: gc waits for no one and refuses
cp -r "$store" "$WORK/copy"
rm -f "$WORK/copy/lock.mdb"
flock -s "$WORK/copy/data.mdb" sleep 30 &
holder=$!
sleep 0.2
$CKPT gc "$WORK/copy" --keep-last 1 >/dev/null 2>"$WORK/gc.err"
rc=$?
kill "$holder" 2>/dev/null
wait "$holder" 2>/dev/null
[ "$rc" -eq 1 ] && [ "$(wc -l <"$WORK/gc.err")" -eq 1 ] &&
	grep -q "is being read by pid $holder (flock) without lock.mdb" "$WORK/gc.err" ||
	fail "gc under a lockless reader: exit $rc: $(cat "$WORK/gc.err")"
[ "$(ls "$WORK/copy")" = data.mdb ] || fail "a refused gc created files: $(ls "$WORK/copy")"

# once the trainer has stopped, gc applies and persists retention; deleting the whole history
# but one leaves pages that LMDB counted but never wrote at the end of data.mdb: the store must
# still open, verify and mount-read (libckpt walks the trees when the file ends early)
out=$($CKPT gc "$store" --keep-last 1) || fail "gc after the run stopped: exit $?"
grep -q "^gc: deleted [0-9]* checkpoints\?; keep-last 1, keep-top 0\$" <<<"$out" || fail "gc: $out"
info=$($CKPT info "$store" 2>"$WORK/info.err") || fail "ckpt info after gc: $(cat "$WORK/info.err")"
grep -qxF "keep-last: 1" <<<"$info" || fail "gc did not persist keep-last: $info $(cat "$WORK/info.err")"
n=$(sed -n 's/^checkpoints: //p' <<<"$info")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "gc --keep-last 1 kept $n of $last checkpoints (the latest and the best)"
$CKPT verify "$store" >/dev/null || fail "ckpt verify after gc"
$CKPT cat "$store" latest/model.pt >/dev/null || fail "ckpt cat after gc"
# a data.mdb cut short is refused as soon as it lacks a page the newest commit uses (the pages
# at its end may be free ones, never written again: cutting those is harmless), and then for
# every shorter cut
cp -r "$store" "$WORK/cut" && rm -f "$WORK/cut/lock.mdb"
full=$(stat -c %s "$WORK/cut/data.mdb")
refused=0
for cut in $(seq 1 $((full / 4096 - 3))); do
	truncate -s $((full - cut * 4096)) "$WORK/cut/data.mdb"
	if $CKPT info "$WORK/cut" >/dev/null 2>"$WORK/cut.err"; then
		[ $refused -eq 0 ] || fail "data.mdb cut by $cut pages was accepted after a shorter cut was refused"
	else
		grep -q "data.mdb is truncated or damaged" "$WORK/cut.err" || fail "cut store: $(cat "$WORK/cut.err")"
		refused=$((refused + 1))
		[ $refused -lt 3 ] || break
	fi
done
[ $refused -ge 1 ] || fail "data.mdb cut to 3 pages was still accepted"
echo "ok: gc is refused while ckpt-train trains or a lockless reader reads, and works after"
