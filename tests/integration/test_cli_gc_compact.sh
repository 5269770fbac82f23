#!/usr/bin/env bash
# tests/integration/test_cli_gc_compact.sh - `ckpt gc --compact` gives the pages gc freed back
# to the file system: data.mdb shrinks, every checkpoint reads back the same, training resumes
# into the compacted file; without --keep-* options it only compacts. It is refused in one line
# while a mount has the store open (that mount would keep reading the old file), before its
# retention deletes anything; with --keep-last it is one step with the retention: SIGKILL at
# any point leaves the store as it was or retained and compacted. SIGKILL at every store write,
# sync and the rename leaves the old or the new data.mdb, whole, even for a process that reads
# lock.mdb as it was left (a shared lock on it stands in for an LMDB user that kept it open); a
# full disk (tmpfs, root only) leaves the store as it was and no copy behind.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
CKPT=$BIN/ckpt
TRAIN=$BIN/ckpt-train
[ -x "$CKPT" ] && [ -x "$TRAIN" ] || fail "build/bin/ckpt or ckpt-train is missing (run make)"

train() { # train STORE EPOCHS [more options]
	local store=$1 epochs=$2
	shift 2
	"$TRAIN" --store "$store" --data synthetic --layers 784,64,10 --val-split 2000 \
		--threads 1 --no-sync --quiet --epochs "$epochs" "$@" >"$TMP/train.log" 2>&1 ||
		fail "ckpt-train $*: $(tail -n 3 "$TMP/train.log")"
}
size_of() { stat -c %s "$1/data.mdb"; }
# what must read back the same: the log and the latest checkpoint's files
fingerprint() {
	"$CKPT" log "$1" && "$CKPT" cat "$1" latest/model.safetensors | md5sum &&
		"$CKPT" cat "$1" latest/checkpoint.pt | md5sum
}

store=$TMP/store
train "$store" 8
cp -r "$store" "$TMP/full" # 8 checkpoints, for gc --keep-last 1 --compact
fingerprint "$TMP/full" >"$TMP/want-full" || fail "reading the store before gc"
"$CKPT" gc "$store" --keep-last 1 >/dev/null || fail "gc --keep-last 1"
fingerprint "$store" >"$TMP/want" || fail "reading the store before compaction"
cp -r "$store" "$TMP/pristine"
# the same store one transaction later: lock.mdb's id of the other parity
cp -r "$store" "$TMP/pristine-odd"
"$CKPT" gc "$TMP/pristine-odd" >/dev/null || fail "gc without options"
before=$(size_of "$store")

# ---- refused while a mount holds the store open, before anything changes: the retention too
require_fuse
mount_store "$TMP/full" "$TMP/mnt"
ls "$TMP/mnt/latest/" >/dev/null || fail "mount does not read"
md5_full=$(md5sum <"$TMP/full/data.mdb")
"$CKPT" gc "$TMP/full" --keep-last 1 --compact >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] ||
	fail "gc --compact under a mount: exit $rc, want 1 and one line: $(cat "$TMP/err")"
grep -qxF "ckpt: error: gc: compacting $TMP/full failed (store $TMP/full is open in process ${PIDS[-1]} (ckptfs), which would go on reading the old data.mdb; compact it when that has closed the store (unmount a mount))" "$TMP/err" ||
	fail "gc --compact under a mount: unclear message: $(cat "$TMP/err")"
[ ! -s "$TMP/out" ] || fail "gc --compact under a mount printed: $(cat "$TMP/out")"
[ "$(md5sum <"$TMP/full/data.mdb")" = "$md5_full" ] && [ "$(ls "$TMP/full")" = "data.mdb
lock.mdb" ] || fail "a refused gc --keep-last 1 --compact changed the store: $(ls -l "$TMP/full")"
fingerprint "$TMP/full" >"$TMP/got" && cmp -s "$TMP/want-full" "$TMP/got" ||
	fail "a refused gc --keep-last 1 --compact deleted checkpoints: $(diff "$TMP/want-full" "$TMP/got")"
unmount_store "$TMP/mnt"

# ---- gc --keep-last 1 --compact: the retention and the compaction in one step
cp -r "$TMP/full" "$TMP/full-kill"
out=$("$CKPT" gc "$TMP/full" --keep-last 1 --compact) || fail "gc --keep-last 1 --compact: exit $?"
grep -qx 'gc: deleted \(1 checkpoint\|[2-9] checkpoints\|[1-9][0-9][0-9]* checkpoints\); keep-last 1, keep-top 0' <<<"$out" &&
	grep -qx "compact: data.mdb [0-9]* -> $(size_of "$TMP/full") bytes ([0-9]* freed)" <<<"$out" ||
	fail "gc --keep-last 1 --compact printed: $out"
fingerprint "$TMP/full" >"$TMP/got" && cmp -s "$TMP/want" "$TMP/got" ||
	fail "gc --keep-last 1 --compact kept other checkpoints than gc --keep-last 1: $(diff "$TMP/want" "$TMP/got")"
[ "$(ls "$TMP/full")" = "data.mdb
lock.mdb" ] || fail "gc --keep-last 1 --compact left files behind: $(ls "$TMP/full")"
"$CKPT" info "$TMP/full" | grep -qx 'keep-last: 1' || fail "gc --keep-last 1 --compact did not persist keep-last"

# ---- compaction: smaller, the same content, and ckpt-train goes on in the new file
out=$("$CKPT" gc "$store" --compact) || fail "gc --compact: exit $?"
after=$(size_of "$store")
grep -qx "compact: data.mdb [0-9]* -> $after bytes ([0-9]* freed)" <<<"$out" && [ "$(wc -l <<<"$out")" -eq 1 ] ||
	fail "gc --compact (no retention: it only compacts) printed: $out"
[ "$after" -lt $((before / 3)) ] || fail "data.mdb went from $before to $after bytes only"
fingerprint "$store" >"$TMP/got" && cmp -s "$TMP/want" "$TMP/got" ||
	fail "the compacted store reads differently: $(diff "$TMP/want" "$TMP/got")"
"$CKPT" verify "$store" >/dev/null || fail "ckpt verify after compaction"
[ "$(ls "$store")" = "data.mdb
lock.mdb" ] || fail "compaction left files behind: $(ls "$store")"
train "$store" 10 --resume
"$CKPT" log "$store" | grep -q '^epoch-0010 ' || fail "no epoch 10 after resuming: $("$CKPT" log "$store")"
"$CKPT" verify "$store" >/dev/null || fail "ckpt verify after resuming into the compacted store"

# ---- SIGKILL at each store write, sync and the rename, before and after it
SHIM=$TMP/killshim.so
${CC:-cc} -shared -fPIC -O1 -o "$SHIM" "$ROOT/tests/reliability/killshim.c" -ldl ||
	fail "cannot build killshim.so"
cp -r "$TMP/pristine" "$TMP/count"
CKPT_IO_COUNT_FILE=$TMP/count.n LD_PRELOAD=$SHIM "$CKPT" gc "$TMP/count" --compact >"$TMP/out" ||
	fail "gc --compact under the shim"
total=$(cat "$TMP/count.n")
small=$(size_of "$TMP/count")
# the other parity's gc commits on another free list, so its compaction may count other writes
cp -r "$TMP/pristine-odd" "$TMP/count-odd"
CKPT_IO_COUNT_FILE=$TMP/count-odd.n LD_PRELOAD=$SHIM "$CKPT" gc "$TMP/count-odd" --compact >"$TMP/out" ||
	fail "gc --compact of pristine-odd under the shim"
total_odd=$(cat "$TMP/count-odd.n")
[ "$total" -ge 8 ] || fail "the shim saw only $total store writes"
holder=
trap '[ -n "$holder" ] && kill "$holder" 2>/dev/null; cleanup' EXIT
trials=0 old=0 new=0
# kill_trial FROM AT AFTER OLD SMALL [GC-OPTION...]: `ckpt gc COPY [GC-OPTION...] --compact` on a
# copy of $TMP/FROM, killed at its AT-th store I/O call (after it when AFTER is 1). The copy
# must then read as before (the fingerprint file OLD, data.mdb as large as FROM's) or as the
# finished job ($TMP/want, SMALL bytes), and the same command run again must finish the job.
kill_trial() {
	local from=$1 at=$2 after_call=$3 want_old=$4 small=$5 s=$TMP/trial size what
	shift 5
	what="kill at $at/$after_call of gc $from $* --compact"
	rm -rf "$s" && cp -r "$TMP/$from" "$s"
	{ # the group's redirection also takes bash's "Killed" notice
		CKPT_KILL_AT=$at CKPT_KILL_AFTER=$after_call LD_PRELOAD=$SHIM "$CKPT" gc "$s" "$@" \
			--compact >/dev/null
	} 2>/dev/null
	rc=$?
	[ "$rc" -eq 137 ] || fail "$what: exit $rc, want 137 (SIGKILL)"
	# an LMDB user that kept lock.mdb open: no reader re-initializes it from data.mdb
	"$PY" -c 'import fcntl, sys, time
f = open(sys.argv[1], "r+b"); fcntl.lockf(f, fcntl.LOCK_SH, 1, 0, 0); print(flush=True); time.sleep(60)' \
		"$s/lock.mdb" >"$TMP/holder.out" &
	holder=$!
	# python's start can take seconds on a loaded machine: wait for it (or its end) up to a minute
	for _ in $(seq 3000); do
		[ -s "$TMP/holder.out" ] || ! kill -0 "$holder" 2>/dev/null && break
		sleep 0.02
	done
	[ -s "$TMP/holder.out" ] || fail "$what: could not lock lock.mdb"
	size=$(size_of "$s")
	if [ "$size" -eq "$small" ]; then
		new=$((new + 1))
		want_old=$TMP/want
	elif [ "$size" -ge "$(size_of "$TMP/$from")" ]; then
		old=$((old + 1))
	else
		fail "$what: data.mdb has $size bytes, neither old ($(size_of "$TMP/$from")+) nor new ($small)"
	fi
	fingerprint "$s" >"$TMP/got" 2>"$TMP/err" && cmp -s "$want_old" "$TMP/got" ||
		fail "$what ($size bytes): the store reads differently: $(cat "$TMP/err"; diff "$want_old" "$TMP/got")"
	"$CKPT" verify "$s" >/dev/null 2>"$TMP/err" || fail "$what: verify: $(cat "$TMP/err")"
	kill "$holder" && wait "$holder" 2>/dev/null
	holder=
	# the next compaction finishes the job and removes what was left behind
	"$CKPT" gc "$s" "$@" --compact >/dev/null 2>"$TMP/err" || fail "$what: compacting again: $(cat "$TMP/err")"
	[ "$(ls "$s")" = "data.mdb
lock.mdb" ] && [ "$(size_of "$s")" -eq "$small" ] || fail "$what: compacting again left $(ls -l "$s")"
	fingerprint "$s" >"$TMP/got" && cmp -s "$TMP/want" "$TMP/got" || fail "$what: compacting again: $(diff "$TMP/want" "$TMP/got")"
	trials=$((trials + 1))
}
# every kill point on one store; the kills around the rename on the other parity too
for trial in $(seq 1 "$total" | sed 's/^/pristine:/') "pristine-odd:$((total_odd - 1))" "pristine-odd:$total_odd"; do
	for after_call in 0 1; do
		kill_trial "${trial%:*}" "${trial#*:}" "$after_call" "$TMP/want" "$small"
	done
done
[ "$old" -gt 0 ] && [ "$new" -gt 0 ] || fail "the kills never landed on both sides of the rename ($old old, $new new)"
# retention and compaction in one step: every kill point leaves all 8 checkpoints or the result
rm -rf "$TMP/count" && cp -r "$TMP/full-kill" "$TMP/count"
CKPT_IO_COUNT_FILE=$TMP/count.n LD_PRELOAD=$SHIM "$CKPT" gc "$TMP/count" --keep-last 1 --compact >"$TMP/out" ||
	fail "gc --keep-last 1 --compact under the shim"
total=$(cat "$TMP/count.n")
old=0 new=0
for trial in $(seq 1 "$total" | sed 's/$/:0/') "$total:1"; do # the last one is the rename
	kill_trial full-kill "${trial%:*}" "${trial#*:}" "$TMP/want-full" "$(size_of "$TMP/count")" --keep-last 1
done
[ "$old" -gt 0 ] && [ "$new" -gt 0 ] || fail "gc --keep-last 1 --compact: the kills never landed on both sides of the rename ($old old, $new new)"

# ---- a full disk during the copy: the store as it was, no copy left (root: a small tmpfs)
disk=$TMP/disk
if [ "$(id -u)" -eq 0 ] && mkdir -p "$disk" && mount -t tmpfs -o size=$(((before + 2 * small) / 1024 + 64))k tmpfs "$disk"; then
	trap '[ -n "$holder" ] && kill "$holder" 2>/dev/null; umount "$disk" 2>/dev/null; cleanup' EXIT
	cp -r "$TMP/pristine" "$disk/s" || fail "copy onto the tmpfs"
	free=$(($(stat -f -c '%a*%S' "$disk" )))
	fallocate -l $((free - small / 2)) "$disk/filler" || fail "fallocate the filler"
	md5=$(md5sum <"$disk/s/data.mdb")
	"$CKPT" gc "$disk/s" --compact >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ "$rc" -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "No space left on device" "$TMP/err" ||
		fail "gc --compact on a full disk: exit $rc: $(cat "$TMP/err")"
	[ "$(ls "$disk/s")" = "data.mdb
lock.mdb" ] || fail "a compaction that ran out of disk left: $(ls "$disk/s")"
	fingerprint "$disk/s" >"$TMP/got" && cmp -s "$TMP/want" "$TMP/got" || fail "the store changed on a full disk"
	rm "$disk/filler"
	"$CKPT" gc "$disk/s" --compact >/dev/null || fail "gc --compact once the disk has room"
	[ "$(size_of "$disk/s")" -eq "$small" ] || fail "compaction after the full disk: $(size_of "$disk/s") bytes"
	[ "$md5" != "$(md5sum <"$disk/s/data.mdb")" ] || fail "the compacted file equals the old one"
	umount "$disk" || fail "umount the tmpfs"
	fulldisk="a full disk leaves the store as it was"
else
	fulldisk="full disk: not root, covered by check_store only"
fi
echo "ok: gc --compact shrank data.mdb $before -> $after bytes; refused under a mount before any retention; $trials kills (plain and with --keep-last 1) all read back as before or as compacted; $fulldisk"
