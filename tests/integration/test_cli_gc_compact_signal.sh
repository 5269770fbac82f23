#!/usr/bin/env bash
# tests/integration/test_cli_gc_compact_signal.sh - `ckpt gc --compact` ended by SIGINT, SIGTERM
# or SIGHUP before it replaces data.mdb removes its copies (data.mdb.compact, data.mdb.gc/),
# leaving the store byte for byte as it was, says so in one line and exits 130, 143 or 129 (it
# used to leave the copies, doubling the store on disk, without a word); one that arrives
# while data.mdb is replaced is held until the new store is ready: the store is compacted and
# whole, and the line says so. Under nohup (SIGHUP ignored) the compaction goes on. The test
# knobs CKPT_COMPACT_TEST_PAUSE_SCRATCH=FILE (the retention applied to the scratch copy in
# data.mdb.gc/), CKPT_COMPACT_TEST_PAUSE=FILE (data.mdb.compact written) and
# CKPT_COMPACT_TEST_PAUSE_SWAPPED=FILE (data.mdb replaced, signals held) stop the compaction
# until the test removes FILE, so each signal surely lands at that point.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_built "$TRAIN" "$CKPT"
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; lib_cleanup' EXIT
pause=$WORK/paused

$TRAIN --store "$WORK/orig" --data synthetic --layers 784,64,10 --val-split 2000 --threads 1 \
	--no-sync --quiet --epochs 6 >"$WORK/train.out" 2>&1 || fail "ckpt-train: $(cat "$WORK/train.out")"
$CKPT log "$WORK/orig" >"$WORK/orig.log" || fail "ckpt log"

# start_paused KNOB GC-ARGS...: `ckpt gc COPY GC-ARGS --compact` on a fresh copy $store of the
# store, held at KNOB's pause (pid $pid; its output in $WORK/out and $WORK/err). It gets SIGINT
# as from a terminal (a script's background job would ignore it).
start_paused() {
	local knob=$1
	shift
	store=$WORK/store
	rm -rf "$store" "$pause" && cp -r "$WORK/orig" "$store" || fail "copying the store"
	md5=$(md5sum <"$store/data.mdb")
	(
		trap - INT
		exec env "$knob=$pause" "$CKPT" gc "$store" "$@" --compact >"$WORK/out" 2>"$WORK/err"
	) &
	pid=$!
	wait_until 60 "$pid" test -e "$pause" ||
		fail "gc $* --compact never reached $knob: $(cat "$WORK/out" "$WORK/err")"
}

# ended SIGNAL STATUS: the paused compaction gets SIGNAL and must end with STATUS
ended() {
	local rc killed
	{ # the group's redirection also takes bash's notice of the job's end by a signal
		kill -"$1" "$pid"
		killed=$?
		rm -f "$pause" # the signal has been delivered or is held: either way it ends the command
		wait "$pid"
		rc=$?
	} 2>/dev/null
	[ "$killed" -eq 0 ] || fail "kill -$1 $pid failed"
	pid=
	[ "$rc" -eq "$2" ] || fail "SIG$1 during gc --compact: exit $rc, want $2: $(cat "$WORK/err")"
	[ ! -s "$WORK/out" ] || fail "SIG$1 during gc --compact printed: $(cat "$WORK/out")"
	[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "SIG$1 during gc --compact, want one line: $(cat "$WORK/err")"
}

# as_it_was WHAT: nothing of the store changed and no copy is left
as_it_was() {
	[ "$(ls -A "$store")" = "data.mdb
lock.mdb" ] || fail "$1 left: $(ls -A "$store")"
	[ "$(md5sum <"$store/data.mdb")" = "$md5" ] || fail "$1 changed data.mdb"
	$CKPT log "$store" | cmp -s - "$WORK/orig.log" || fail "$1: the store reads differently"
	grep -qxF "ckpt: error: gc: compacting $store was interrupted by SIG$2 before it replaced data.mdb: nothing changed, no copy is left" "$WORK/err" ||
		fail "$1 said: $(cat "$WORK/err")"
	# and a compaction then works as ever
	$CKPT gc "$store" --compact >/dev/null 2>"$WORK/err2" || fail "$1: gc --compact after it: $(cat "$WORK/err2")"
	$CKPT verify "$store" >/dev/null 2>"$WORK/err2" || fail "$1: ckpt verify: $(cat "$WORK/err2")"
}

# the compacted copy written, every lock held
start_paused CKPT_COMPACT_TEST_PAUSE
[ -s "$store/data.mdb.compact" ] || fail "no data.mdb.compact at the pause: $(ls -A "$store")"
ended TERM 143
as_it_was "SIGTERM with data.mdb.compact written" TERM

# retention applied to the scratch copy, nothing compacted yet: Ctrl-C
start_paused CKPT_COMPACT_TEST_PAUSE_SCRATCH --keep-last 2
[ -s "$store/data.mdb.gc/data.mdb" ] || fail "no scratch copy at the pause: $(ls -AR "$store")"
ended INT 130
as_it_was "SIGINT with the scratch copy made (--keep-last 2)" INT

start_paused CKPT_COMPACT_TEST_PAUSE --keep-last 2
ended HUP 129
as_it_was "SIGHUP with data.mdb.compact written (--keep-last 2)" HUP

# while data.mdb is replaced: held until the compacted store is ready, then it ends the command
start_paused CKPT_COMPACT_TEST_PAUSE_SWAPPED --keep-last 2
ended TERM 143
grep -qxF "ckpt: error: gc: compacting $store was interrupted by SIGTERM after it replaced data.mdb: the store is whole, compacted, with the retention applied" "$WORK/err" ||
	fail "SIGTERM after the swap said: $(cat "$WORK/err")"
[ "$(ls -A "$store")" = "data.mdb
lock.mdb" ] || fail "SIGTERM after the swap left: $(ls -A "$store")"
[ "$(stat -c %s "$store/data.mdb")" -lt "$(stat -c %s "$WORK/orig/data.mdb")" ] ||
	fail "SIGTERM after the swap: data.mdb is not the compacted one"
[ "$($CKPT log "$store" | sed -n '2,$s/ .*//p' | tr '\n' ' ')" = "epoch-0005 epoch-0006 " ] ||
	fail "SIGTERM after the swap: the store holds $($CKPT log "$store")"
$CKPT verify "$store" >/dev/null 2>"$WORK/err2" || fail "SIGTERM after the swap: ckpt verify: $(cat "$WORK/err2")"
$TRAIN --store "$store" --resume --epochs 7 --quiet --no-sync >"$WORK/train.out" 2>&1 ||
	fail "ckpt-train --resume after SIGTERM after the swap: $(cat "$WORK/train.out")"

# under nohup SIGHUP stays ignored: the compaction finishes
store=$WORK/store
rm -rf "$store" "$pause" && cp -r "$WORK/orig" "$store" || fail "copying the store"
(
	trap '' HUP
	exec env CKPT_COMPACT_TEST_PAUSE="$pause" "$CKPT" gc "$store" --compact >"$WORK/out" 2>"$WORK/err"
) &
pid=$!
wait_until 60 "$pid" test -e "$pause" || fail "nohup gc --compact never paused: $(cat "$WORK/err")"
kill -HUP "$pid"
rm -f "$pause"
wait "$pid" || fail "gc --compact with SIGHUP ignored: exit $?: $(cat "$WORK/err")"
pid=
grep -q '^compact: data.mdb ' "$WORK/out" && [ ! -s "$WORK/err" ] ||
	fail "gc --compact with SIGHUP ignored printed: $(cat "$WORK/out" "$WORK/err")"
echo "ok: SIGINT, SIGTERM and SIGHUP before the swap leave the store as it was and no copy (130, 143, 129, one line); SIGTERM during the swap leaves it compacted and whole; nohup's SIGHUP is ignored"
