#!/usr/bin/env bash
# tests/integration/test_cli_gc_compact_wait.sh - commands started while `ckpt gc --compact`
# runs wait for it, then work on the compacted store: a `ckpt gc`, another `ckpt gc --compact`
# and `ckpt-train --resume` (they used to be refused, naming a trainer that did not exist),
# `ckpt log` and a ckptfs mount (they opened the old data.mdb and failed with "File is not an
# LMDB file"); the mount then shows what is committed to the new file. The
# test knob CKPT_COMPACT_TEST_PAUSE=FILE holds the compaction, with every lock taken and its
# copy written, until the test removes FILE, so each command surely starts during it;
# /proc/locks shows the command waiting for a lock on the store.
. "$(dirname "$0")/lib.sh"
need_built "$TRAIN" "$CKPT"
cpid= pid=
store=$WORK/store mnt=$WORK/mnt
trap '[ -n "$cpid" ] && kill "$cpid" 2>/dev/null; mountpoint -q "$mnt" && fusermount3 -u "$mnt"
	[ -n "$pid" ] && kill "$pid" 2>/dev/null; lib_cleanup' EXIT
pause=$WORK/paused

$TRAIN --store "$store" --data synthetic --layers 784,16,10 --val-split 2000 --threads 1 \
	--no-sync --quiet --epochs 6 >"$WORK/train.out" 2>&1 || fail "ckpt-train: $(cat "$WORK/train.out")"

# a process waits for a lock on the store directory (gc) or its lock.mdb (LMDB): a blocked
# ("->") line of /proc/locks with that inode
blocked_on_store() {
	local ino
	for ino in $(stat -c %i "$store" "$store/lock.mdb"); do
		grep -Eq -- "-> .*:$ino " /proc/locks && return 0
	done
	return 1
}

# start_during CMD...: start CMD (pid $pid) while `ckpt gc --keep-last 2 --compact` is held at
# its pause, check that CMD waits, and let the compaction finish; CMD's output goes to
# $WORK/cmd.out and cmd.err
start_during() {
	rm -f "$pause"
	CKPT_COMPACT_TEST_PAUSE=$pause $CKPT gc "$store" --keep-last 2 --compact \
		>"$WORK/compact.out" 2>"$WORK/compact.err" &
	cpid=$!
	wait_until 30 "$cpid" test -e "$pause" || fail "the compaction never paused: $(cat "$WORK/compact.err")"
	"$@" >"$WORK/cmd.out" 2>"$WORK/cmd.err" &
	pid=$!
	wait_until 30 "$pid" blocked_on_store ||
		fail "$* during a compaction: did not wait for it: $(cat "$WORK/cmd.out" "$WORK/cmd.err")"
	rm -f "$pause"
	wait "$cpid" || fail "the compaction failed: $(cat "$WORK/compact.err")"
	cpid=
	grep -q '^compact: data.mdb ' "$WORK/compact.out" || fail "compaction printed: $(cat "$WORK/compact.out")"
}

# during CMD...: start_during, then CMD must succeed without a word on stderr
during() {
	start_during "$@"
	wait "$pid" || fail "$* during a compaction: exit $?: $(cat "$WORK/cmd.err")"
	pid=
	[ ! -s "$WORK/cmd.err" ] || fail "$* during a compaction said: $(cat "$WORK/cmd.err")"
}

during $CKPT gc "$store" --keep-last 3
grep -qx 'gc: deleted 0 checkpoints; keep-last 3, keep-top 0' "$WORK/cmd.out" ||
	fail "gc during a compaction printed: $(cat "$WORK/cmd.out")"

during $CKPT gc "$store" --compact
grep -qx "compact: data.mdb [0-9]* -> $(stat -c %s "$store/data.mdb") bytes (0 freed)" "$WORK/cmd.out" ||
	fail "gc --compact during a compaction printed: $(cat "$WORK/cmd.out")"

during $TRAIN --store "$store" --resume --epochs 8 --quiet --no-sync
log=$($CKPT log "$store") || fail "ckpt log after resuming"
[ "$(sed -n '$s/ .*//p' <<<"$log")" = epoch-0008 ] || fail "no epoch 8 after resuming during a compaction: $log"
$CKPT verify "$store" >/dev/null || fail "ckpt verify after resuming during a compaction"

# readers open data.mdb before they wait in LMDB: they open the compacted file once it is there
during $CKPT log "$store"
$CKPT log "$store" | cmp -s - "$WORK/cmd.out" || fail "ckpt log during a compaction printed: $(cat "$WORK/cmd.out")"
# a mount too, where FUSE is usable (in CI it must be, as for the mount tests)
if nofuse=$(fuse_unusable); then
	[ "${CI:-}" != true ] || fail "$nofuse: the mount during a compaction cannot run (CI=true, so this is a failure)"
	mounted="mount not tried: $nofuse"
else
	mkdir "$mnt"
	start_during $CKPTFS "$store" "$mnt" -f
	wait_until 30 "$pid" mountpoint -q "$mnt" || fail "ckptfs started during a compaction: $(cat "$WORK/cmd.err")"
	# it maps the compacted file: what is committed to it shows
	$TRAIN --store "$store" --resume --epochs 9 --quiet --no-sync || fail "ckpt-train --resume --epochs 9"
	wait_until 30 "$pid" test -d "$mnt/epoch-0009" || fail "the mount started during a compaction does not show epoch 9: $(ls "$mnt")"
	fusermount3 -u "$mnt" || fail "fusermount3 -u"
	wait "$pid" || fail "ckptfs: exit $? after unmounting: $(cat "$WORK/cmd.err")"
	pid=
	mounted="ckptfs mounts the compacted store"
fi
[ "$(ls "$store")" = "data.mdb
lock.mdb" ] || fail "files left in the store: $(ls "$store")"
echo "ok: ckpt gc, ckpt gc --compact, ckpt-train --resume and ckpt log started during a compaction wait for it and then work; $mounted"
