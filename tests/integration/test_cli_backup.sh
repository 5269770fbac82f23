#!/usr/bin/env bash
# tests/integration/test_cli_backup.sh - `ckpt backup STORE DEST`: backups taken while ckpt-train
# commits multi-MB epochs each pass `ckpt verify` and hold exactly the checkpoints of a reference
# run (--threads 1 is deterministic: `ckpt show` of every epoch equal), and ckpt-train --resume
# from one reaches the reference run's last epoch bit-exactly; a backup under a mount, of a
# store without lock.mdb and of one on a read-only file system (root: a tmpfs remounted ro) leaves
# the store as it was; bad destinations are refused in one line (exit 1, usage 2) with nothing
# made; a full disk (root: a small tmpfs) and SIGTERM during the copy leave nothing behind;
# under nohup SIGHUP stays ignored (the backup's handler used to take it and end the backup).
# A current directory deeper than PATH_MAX is no obstacle (DEST is checked through descriptors).
# The copy is read back in DEST/data.mdb.tmp/ before it becomes DEST/data.mdb: SIGKILL while it
# is checked leaves no DEST/data.mdb (it used to be renamed first), SIGTERM then leaves nothing.
# Damage is named as the store's (the copy is taken from it), the epoch once, with `ckpt verify
# STORE` (it used to blame the backup: "backup D: epoch 7: store D: epoch 7: ..."), and as the
# copy's where only the copy is damaged; without --verify a damaged checkpoint record is copied
# as it is: the backup is made and printed, one line names the damage, exit 1.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
CKPT=$BIN/ckpt
TRAIN=$BIN/ckpt-train
[ -x "$CKPT" ] && [ -x "$TRAIN" ] || fail "build/bin/ckpt or ckpt-train is missing (run make)"
disks=()
trap 'for d in "${disks[@]+"${disks[@]}"}"; do umount "$d" 2>/dev/null; done; cleanup' EXIT

EPOCHS=12
# about 4.9 MB per checkpoint (784x512 weights and Adam's two moments), a third of a second each
opts=(--data synthetic --layers 784,512,10 --val-split 2000 --optimizer adam --threads 1 --no-sync --quiet)
"$TRAIN" --store "$TMP/ref" "${opts[@]}" --epochs $EPOCHS >"$TMP/train.log" 2>&1 ||
	fail "reference run: $(tail -n 3 "$TMP/train.log")"
for e in $(seq 1 $EPOCHS); do
	"$CKPT" show "$TMP/ref" "$e" >"$TMP/ref-$e.show" || fail "ckpt show ref $e"
done

# same_as_ref BACKUP: verify passes, and each epoch it holds is the reference run's
same_as_ref() {
	local b=$1 e n=0
	"$CKPT" verify "$b" >"$TMP/verify.out" 2>&1 || fail "ckpt verify $b: $(cat "$TMP/verify.out")"
	for e in $("$CKPT" log "$b" | awk 'NR > 1 { sub("epoch-0*", "", $1); print $1 }'); do
		"$CKPT" show "$b" "$e" | cmp -s - "$TMP/ref-$e.show" ||
			fail "$b: epoch $e differs from the reference run's"
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || fail "$b holds no checkpoint"
}

# ---- backups while ckpt-train commits
"$TRAIN" --store "$TMP/live" "${opts[@]}" --epochs $EPOCHS >"$TMP/live.log" 2>&1 &
trainer=$!
PIDS+=("$trainer")
wait_for() { local i; for ((i = 0; i < 600; i++)); do "$@" && return 0; sleep 0.05; done; return 1; }
has_checkpoint() { "$CKPT" info "$1" 2>/dev/null | grep -q '^latest: epoch-'; }
wait_for has_checkpoint "$TMP/live" || fail "ckpt-train committed no checkpoint"
n=0 during=0
while :; do
	running=0
	kill -0 "$trainer" 2>/dev/null && running=1
	b=$TMP/bk-$n
	out=$("$CKPT" backup "$TMP/live" "$b" 2>"$TMP/err") || fail "backup $n during training: $(cat "$TMP/err")"
	[ ! -s "$TMP/err" ] || fail "backup $n wrote to stderr: $(cat "$TMP/err")"
	grep -qx "backup: $b/data.mdb, [0-9]* checkpoints\? (latest epoch-[0-9]\{4\}), $(stat -c %s "$b/data.mdb") bytes" <<<"$out" ||
		fail "backup $n printed: $out"
	[ "$(ls "$b")" = data.mdb ] || fail "backup $n holds: $(ls "$b")"
	latest=$(sed 's/.*latest epoch-0*\([0-9]*\)).*/\1/' <<<"$out")
	[ "$running" -eq 1 ] && [ "$latest" -lt $EPOCHS ] && during=$((during + 1))
	n=$((n + 1))
	[ "$running" -eq 1 ] || break
	sleep 0.2
done
wait "$trainer" || fail "ckpt-train during the backups: $(tail -n 3 "$TMP/live.log")"
[ "$during" -ge 3 ] || fail "only $during of $n backups were taken while ckpt-train trained"
for ((i = 0; i < n; i++)); do
	same_as_ref "$TMP/bk-$i"
done
[ "$(ls "$TMP/live")" = "data.mdb
lock.mdb" ] || fail "the backups left files in the store: $(ls "$TMP/live")"

# ---- ckpt-train --resume from a backup taken mid-run reaches the reference run bit-exactly
for ((i = 0; i < n; i++)); do # the last backup without the last epoch
	"$CKPT" log "$TMP/bk-$i" | grep -q "^epoch-0012 " || mid=$TMP/bk-$i
done
from=$("$CKPT" log "$mid" | tail -n 1 | cut -d' ' -f1)
"$TRAIN" --store "$mid" --resume --epochs $EPOCHS --threads 1 --quiet >"$TMP/resume.log" 2>&1 ||
	fail "ckpt-train --resume from a backup: $(tail -n 3 "$TMP/resume.log")"
"$CKPT" show "$mid" $EPOCHS | cmp -s - "$TMP/ref-$EPOCHS.show" ||
	fail "resuming from a backup at $from did not reach the reference run's epoch $EPOCHS"

# ---- --verify; under a mount; a store without lock.mdb
out=$("$CKPT" backup "$TMP/ref" "$TMP/verified/" --verify) || fail "backup --verify: exit $?"
grep -qx "backup: $TMP/verified/data.mdb, $EPOCHS checkpoints (latest epoch-0012), [0-9]* bytes; verify: ok, [0-9]* tensors, [0-9]* bytes" <<<"$out" ||
	fail "backup --verify printed: $out"
if why=$(fuse_unusable); then
	echo "SKIP: backup under a mount ($why)"
	mounted="no mount ($why)"
else
	mount_store "$TMP/ref" "$TMP/mnt"
	cat "$TMP/mnt/best/metrics.json" >/dev/null || fail "the mount does not read"
	"$CKPT" backup "$TMP/ref" "$TMP/bk-mounted" >/dev/null || fail "backup under a mount"
	same_as_ref "$TMP/bk-mounted"
	unmount_store "$TMP/mnt"
	mounted="under a mount"
fi
cp -r "$TMP/ref" "$TMP/nolock" && rm "$TMP/nolock/lock.mdb"
"$CKPT" backup "$TMP/nolock" "$TMP/bk-nolock" >/dev/null || fail "backup of a store without lock.mdb"
[ "$(ls "$TMP/nolock")" = data.mdb ] || fail "backup created in a store without lock.mdb: $(ls "$TMP/nolock")"
same_as_ref "$TMP/bk-nolock"

# ---- bad destinations: one line, exit 1 (2 for usage), nothing made
mkdir "$TMP/full" && echo x >"$TMP/full/notes" && echo x >"$TMP/afile"
md5=$(md5sum <"$TMP/ref/data.mdb")
: >"$TMP/out" && : >"$TMP/err"
before=$(ls -R "$TMP" | md5sum)
# refused WANT-EXIT WANT-WORDS ARGS...
refused() {
	local want=$1 words=$2
	shift 2
	"$CKPT" backup "$@" >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	[ "$rc" -eq "$want" ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && [ ! -s "$TMP/out" ] &&
		grep -q "^ckpt: error: .*$words" "$TMP/err" ||
		fail "backup $*: exit $rc (want $want), want one line with '$words': $(cat "$TMP/err" "$TMP/out")"
	[ "$(ls -R "$TMP" | md5sum)" = "$before" ] || fail "backup $* made files: $(ls -R "$TMP" | head)"
}
refused 1 "$TMP/full is not empty, it holds notes: a backup goes into a new or an empty directory" "$TMP/ref" "$TMP/full"
refused 1 "$TMP/afile exists and is not a directory" "$TMP/ref" "$TMP/afile"
refused 1 "$TMP/ref is the store itself" "$TMP/ref" "$TMP/ref/"
refused 1 "$TMP/ref/sub is inside the store $TMP/ref" "$TMP/ref" "$TMP/ref/sub"
refused 1 "its parent directory $TMP/no does not exist" "$TMP/ref" "$TMP/no/bk"
refused 1 "cannot open store '$TMP/nostore'" "$TMP/nostore" "$TMP/bk-x"
refused 2 "expected 2 arguments, got 1" "$TMP/ref"
refused 2 "unknown option '--compact'" "$TMP/ref" "$TMP/bk-x" --compact
[ "$(md5sum <"$TMP/ref/data.mdb")" = "$md5" ] || fail "a refused backup changed the store"

# ---- in a current directory whose absolute path is longer than PATH_MAX (entered step by step)
# the backup works, as the other commands work there: DEST and the store are compared by their
# identities, not by absolute paths (it failed: "store deep: File name too long")
(
	cd "$TMP" && mkdir deep && cd deep || fail "mkdir deep"
	name=$(printf 'd%.0s' {1..200})
	while [ ${#PWD} -le 4200 ]; do
		mkdir "$name" && cd "$name" || fail "mkdir of a 200-byte name in $(pwd | wc -c) bytes"
	done
	cp -r "$TMP/ref" store || fail "copy the store into the deep directory"
	"$CKPT" backup store bk >"$TMP/out" 2>&1 || fail "backup in a deep directory: $(cat "$TMP/out")"
	[ -e bk/data.mdb ] && [ ! -e bk/data.mdb.tmp ] || fail "the deep backup: $(ls -A bk)"
	"$CKPT" verify bk >"$TMP/out" 2>&1 || fail "ckpt verify of the deep backup: $(cat "$TMP/out")"
	"$CKPT" log store | cmp -s - <("$CKPT" log bk) || fail "the deep backup's log differs"
	mkdir empty && "$CKPT" backup "$TMP/ref" empty >"$TMP/out" 2>&1 ||
		fail "backup into an empty deep directory: $(cat "$TMP/out")"
	for d in store/in store/. bk; do
		"$CKPT" backup store "$d" >"$TMP/out" 2>&1 && fail "backup into $d was made"
	done
	"$CKPT" backup store store/in >"$TMP/out" 2>&1
	grep -q "store/in is inside the store store" "$TMP/out" ||
		fail "a deep backup inside the store: $(cat "$TMP/out")"
	[ ! -e store/in ] && [ ! -e bk/data.mdb.tmp ] || fail "a refused deep backup made files"
) || exit 1
rm -rf "$TMP/deep"

# ---- SIGTERM while the copy is written: nothing left
CKPT_BACKUP_TEST_PAUSE=$TMP/pause "$CKPT" backup "$TMP/ref" "$TMP/bk-term" >/dev/null 2>"$TMP/term.err" &
pid=$!
wait_for test -e "$TMP/pause" || fail "the backup never reached its pause"
[ -s "$TMP/bk-term/data.mdb.tmp" ] || fail "no data.mdb.tmp while paused: $(ls "$TMP/bk-term")"
[ -s "$TMP/bk-term/data.mdb.tmp/data.mdb" ] || fail "no data.mdb.tmp/data.mdb while paused: $(ls -R "$TMP/bk-term")"
kill -TERM "$pid"
wait "$pid"
rc=$?
rm -f "$TMP/pause"
[ "$rc" -eq 143 ] || fail "SIGTERM: exit $rc, want 143"
[ ! -e "$TMP/bk-term" ] || fail "SIGTERM left $(ls -a "$TMP/bk-term")"
# one line says so (it ended silently)
[ "$(wc -l <"$TMP/term.err")" -eq 1 ] &&
	grep -q "^ckpt: error: backup of .* to .*bk-term was interrupted by SIGTERM: a copy not yet renamed to data.mdb is removed" "$TMP/term.err" ||
	fail "SIGTERM: stderr $(cat "$TMP/term.err")"

# under nohup (SIGHUP ignored) the backup goes on
(
	trap '' HUP
	exec env CKPT_BACKUP_TEST_PAUSE="$TMP/pause" "$CKPT" backup "$TMP/ref" "$TMP/bk-nohup" >/dev/null 2>"$TMP/err"
) &
pid=$!
wait_for test -e "$TMP/pause" || fail "the backup under nohup never reached its pause"
kill -HUP "$pid"
rm -f "$TMP/pause"
wait "$pid" || fail "SIGHUP ignored (nohup) ended the backup: exit $?: $(cat "$TMP/err")"
[ "$(ls -A "$TMP/bk-nohup")" = data.mdb ] || fail "the backup under nohup holds: $(ls -A "$TMP/bk-nohup")"

# ---- while the copy is read back (--verify): no DEST/data.mdb yet; SIGKILL leaves no store,
# SIGTERM nothing
# paused_checking DEST: a backup --verify of ref into DEST, held while it checks the copy ($pid)
paused_checking() {
	rm -f "$TMP/pause"
	CKPT_BACKUP_TEST_PAUSE_VALIDATING=$TMP/pause "$CKPT" backup "$TMP/ref" "$1" --verify >/dev/null 2>&1 &
	pid=$!
	local i
	for ((i = 0; i < 1200; i++)); do
		[ -e "$TMP/pause" ] && break
		kill -0 "$pid" 2>/dev/null || fail "the backup ended without pausing while it checked the copy: $(ls -AR "$1")"
		sleep 0.05
	done
	[ -e "$TMP/pause" ] || fail "the backup never paused while it checked the copy"
	[ "$(ls -A "$1")" = data.mdb.tmp ] || fail "DEST while the copy is checked: $(ls -AR "$1")"
}
paused_checking "$TMP/bk-kill"
{
	kill -KILL "$pid"
	wait "$pid"
	rc=$?
} 2>/dev/null
rm -f "$TMP/pause"
[ "$rc" -eq 137 ] || fail "SIGKILL while the copy is checked: exit $rc, want 137"
[ "$(ls -A "$TMP/bk-kill")" = data.mdb.tmp ] && [ ! -e "$TMP/bk-kill/data.mdb" ] ||
	fail "SIGKILL while the copy is checked left: $(ls -AR "$TMP/bk-kill")"
! "$CKPT" info "$TMP/bk-kill" >/dev/null 2>&1 || fail "SIGKILL while the copy is checked left a store"
paused_checking "$TMP/bk-term2"
kill -TERM "$pid"
wait "$pid"
rc=$?
rm -f "$TMP/pause"
[ "$rc" -eq 143 ] && [ ! -e "$TMP/bk-term2" ] ||
	fail "SIGTERM while the copy is checked: exit $rc, left $(ls -AR "$TMP/bk-term2" 2>&1)"

# ---- damage: the store's, named as such; the copy's own
# flip FILE OFFSET: change the byte at OFFSET
flip() {
	"$PY" - "$1" "$2" <<'PY' || fail "flip $1 $2"
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)[0]
    f.seek(int(sys.argv[2]))
    f.write(bytes([b ^ 0x24]))
PY
}
OFF=$TOOLS/record_offset
[ -x "$OFF" ] || fail "build/tests/tools/record_offset is missing (make test builds it)"
cp -r "$TMP/ref" "$TMP/dmg" && rm "$TMP/dmg/lock.mdb"
read -r at len < <("$OFF" "$TMP/dmg" ckpt 7) || fail "record_offset ckpt 7"
flip "$TMP/dmg/data.mdb" $((at + len / 2))
md5=$(md5sum <"$TMP/dmg/data.mdb")
# --verify: refused, nothing made, one line naming the store, epoch 7 once
"$CKPT" backup "$TMP/dmg" "$TMP/bk-dmg" --verify >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 1 ] && [ ! -s "$TMP/out" ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && [ ! -e "$TMP/bk-dmg" ] ||
	fail "backup --verify of a damaged record: exit $rc, left $(ls -A "$TMP/bk-dmg" 2>&1): $(cat "$TMP/out" "$TMP/err")"
grep -q "^ckpt: error: backup of $TMP/dmg to $TMP/bk-dmg failed (store $TMP/dmg is damaged: epoch 7: corrupt checkpoint record: .*; ckpt verify $TMP/dmg names every damaged record)$" "$TMP/err" &&
	[ "$(grep -o 'epoch 7' "$TMP/err" | wc -l)" -eq 1 ] && ! grep -q "store $TMP/bk-dmg" "$TMP/err" ||
	fail "backup --verify of a damaged record said: $(cat "$TMP/err")"
# without --verify: made, with the damaged record as it is, the line printed, then one error line
"$CKPT" backup "$TMP/dmg" "$TMP/bk-dmg" >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 1 ] && [ "$(ls -A "$TMP/bk-dmg")" = data.mdb ] ||
	fail "backup of a damaged record: exit $rc (want 1), made $(ls -A "$TMP/bk-dmg" 2>&1): $(cat "$TMP/err")"
grep -qx "backup: $TMP/bk-dmg/data.mdb, $EPOCHS checkpoints (latest epoch-0012), $(stat -c %s "$TMP/bk-dmg/data.mdb") bytes" "$TMP/out" ||
	fail "backup of a damaged record printed: $(cat "$TMP/out")"
[ "$(wc -l <"$TMP/err")" -eq 1 ] &&
	grep -q "^ckpt: error: store $TMP/dmg is damaged: epoch 7: corrupt checkpoint record: .*; the backup holds it as it is (ckpt verify $TMP/dmg names every damaged record)$" "$TMP/err" ||
	fail "backup of a damaged record said: $(cat "$TMP/err")"
"$CKPT" log "$TMP/bk-dmg" >"$TMP/log" 2>&1 # exit 1: a damaged record
grep -q '^epoch-0007 .*damaged record' "$TMP/log" ||
	fail "the backup does not hold epoch 7 as the store does: $(cat "$TMP/log")"
"$CKPT" verify "$TMP/bk-dmg" >"$TMP/log" 2>&1
grep -q "1 problem in $EPOCHS checkpoints" "$TMP/log" ||
	fail "ckpt verify of the backup of a damaged record: $(cat "$TMP/log")"
for e in $(seq 1 $EPOCHS); do
	[ "$e" -eq 7 ] || "$CKPT" show "$TMP/bk-dmg" "$e" | cmp -s - "$TMP/ref-$e.show" ||
		fail "the backup of a damaged record: epoch $e differs from the reference run's"
done
[ "$(md5sum <"$TMP/dmg/data.mdb")" = "$md5" ] && [ "$(ls "$TMP/dmg")" = data.mdb ] ||
	fail "backing up a damaged store changed it: $(ls "$TMP/dmg")"
# a damaged tensor chunk, with --verify: the store's, named by epoch, tensor and chunk
cp -r "$TMP/ref" "$TMP/dmg-t"
"$CKPT" cat "$TMP/ref" epoch-0001/model/fc1.weight.npy >"$TMP/fc1.npy" || fail "ckpt cat fc1.weight.npy"
at=$("$PY" - "$TMP/fc1.npy" "$TMP/dmg-t/data.mdb" <<'PY'
import sys
npy = open(sys.argv[1], "rb").read()
data = 10 + int.from_bytes(npy[8:10], "little") # a version 1 .npy header
needle = npy[data + 4000:data + 4064]
store = open(sys.argv[2], "rb").read()
at = store.find(needle)
assert at > 0 and store.find(needle, at + 1) < 0, "the bytes are not once in data.mdb"
print(at + 32)
PY
) || fail "finding epoch 1's fc1.weight in data.mdb"
flip "$TMP/dmg-t/data.mdb" "$at"
"$CKPT" backup "$TMP/dmg-t" "$TMP/bk-dmg-t" --verify >"$TMP/out" 2>"$TMP/err"
rc=$?
[ "$rc" -eq 1 ] && [ ! -e "$TMP/bk-dmg-t" ] &&
	grep -qx "ckpt: error: backup of $TMP/dmg-t to $TMP/bk-dmg-t failed (store $TMP/dmg-t is damaged: epoch 1: tensor fc1.weight: chunk 0 fails its CRC-32; ckpt verify $TMP/dmg-t names every damaged record)" "$TMP/err" ||
	fail "backup --verify of a damaged tensor: exit $rc: $(cat "$TMP/err")"
# the copy damaged while the store is whole: the copy's damage, nothing left
CKPT_BACKUP_TEST_PAUSE=$TMP/pause "$CKPT" backup "$TMP/ref" "$TMP/bk-bad" >"$TMP/out" 2>"$TMP/err" &
pid=$!
wait_for test -e "$TMP/pause" || fail "the backup never reached its pause"
read -r at len < <("$OFF" "$TMP/bk-bad/data.mdb.tmp" ckpt 7) || fail "record_offset of the copy"
flip "$TMP/bk-bad/data.mdb.tmp/data.mdb" $((at + len / 2))
rm -f "$TMP/pause"
wait "$pid"
rc=$?
[ "$rc" -eq 1 ] && [ ! -e "$TMP/bk-bad" ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] &&
	grep -q "^ckpt: error: backup of $TMP/ref to $TMP/bk-bad failed (the copy of $TMP/ref does not read back as the store: epoch 7: corrupt checkpoint record: .*, while the store's reads correctly" "$TMP/err" ||
	fail "a copy damaged after it was written: exit $rc, left $(ls -A "$TMP/bk-bad" 2>&1): $(cat "$TMP/err")"
damage="damage named as the store's (--verify: refused; without: copied and named, exit 1) or the copy's"

# ---- a full disk and a read-only file system (root: tmpfs)
if [ "$(id -u)" -eq 0 ] && mkdir "$TMP/disk" && mount -t tmpfs -o size=8m tmpfs "$TMP/disk"; then
	disks+=("$TMP/disk")
	"$CKPT" backup "$TMP/ref" "$TMP/disk/bk" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ "$rc" -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "No space left on device" "$TMP/err" ||
		fail "backup onto a full disk: exit $rc: $(cat "$TMP/err")"
	[ -z "$(ls -A "$TMP/disk")" ] || fail "a backup that ran out of disk left: $(ls -AR "$TMP/disk")"
	mkdir "$TMP/ro" && mount -t tmpfs -o size=128m tmpfs "$TMP/ro" && disks+=("$TMP/ro") &&
		cp -r "$TMP/ref" "$TMP/ro/s" && mount -o remount,ro "$TMP/ro" || fail "a read-only tmpfs"
	"$CKPT" backup "$TMP/ro/s" "$TMP/bk-ro" >/dev/null || fail "backup of a store on a read-only file system"
	same_as_ref "$TMP/bk-ro"
	umount "$TMP/disk" "$TMP/ro" || fail "umount the tmpfs"
	disks=()
	root="a full disk leaves nothing, a store on a read-only file system backs up"
else
	echo "SKIP: backup onto a full disk and of a read-only file system (not root: no tmpfs)"
	root="no tmpfs (not root)"
fi
echo "ok: $n backups ($during while ckpt-train committed) verify and equal the reference run; resume from $from is bit-exact; --verify, $mounted, without lock.mdb; bad destinations refused; SIGTERM leaves nothing, SIGKILL while the copy is checked no store; $damage; $root"
