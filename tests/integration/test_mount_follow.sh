#!/usr/bin/env bash
# tests/integration/test_mount_follow.sh - an open history.csv follows appended rows (tail -f,
# readline followers) while ckpt-train commits, best flags flipping in place included; one
# whose rows retention or ckpt gc deleted keeps its version at its end (no torn bytes) and reads
# the store's when read again from 0: tail -f and tail -F of a --keep-last run end on its rows.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse
trainer_usable || { echo "test_mount_follow: skipped (no ckpt-train)"; exit 0; }

# layers wide enough that an epoch takes a while: a follower polls between commits
train() {
	"$BIN/ckpt-train" --store "$1" --data synthetic --layers 784,256,128,10 --threads 1 --quiet "${@:2}"
}

# train_and_mount STORE EPOCHS: a fresh run's store, mounted at $mnt
train_and_mount() {
	train "$1" --epochs "$2" >"$TMP/train.log" 2>&1 || fail "ckpt-train: $(tail -n 3 "$TMP/train.log")"
	mount_store "$1" "$mnt"
}

# start_tail NAME -f|-F: tail of the whole history.csv into $TMP/NAME.out and .err, its pid in
# tail_pid (killed at exit too)
start_tail() {
	tail -n +1 "$2" "$mnt/history.csv" >"$TMP/$1.out" 2>"$TMP/$1.err" &
	tail_pid=$!
	PIDS+=("$tail_pid")
}

# grow: synthetic data improves for a few epochs, so best moves and old rows' flags flip
store=$TMP/grow
mnt=$TMP/mnt
train_and_mount "$store" 2
start_tail tail -f
tpid=$tail_pid
"$PY" "$(dirname "$0")/mount_follow.py" grow "$mnt" "$BIN/ckpt" "$store" -- \
	"$BIN/ckpt-train" --store "$store" --resume --epochs 8 --threads 1 --quiet ||
	fail "an open history.csv did not follow the appended rows"
"$BIN/ckpt" cat "$store" history.csv >"$TMP/want.csv" || fail "ckpt cat history.csv"
# tail -f polls a FUSE file every second: wait for its lines, 30 s at most on a loaded machine
deadline=$((SECONDS + 30))
while [ "$(wc -l <"$TMP/tail.out")" -lt "$(wc -l <"$TMP/want.csv")" ] && [ $SECONDS -lt $deadline ]; do
	sleep 0.2
done
kill "$tpid" && wait "$tpid" 2>/dev/null
[ "$(wc -l <"$TMP/tail.out")" -eq "$(wc -l <"$TMP/want.csv")" ] ||
	fail "tail -f printed $(wc -l <"$TMP/tail.out") lines, history.csv has $(wc -l <"$TMP/want.csv"): $(cat "$TMP/tail.out")"
# every row as the store has it, but for a best flag that flipped after tail printed it
diff <(sed 's/,[01]$//' "$TMP/tail.out") <(sed 's/,[01]$//' "$TMP/want.csv") >/dev/null ||
	fail "tail -f printed other rows: $(diff "$TMP/tail.out" "$TMP/want.csv")"
grep -q truncated "$TMP/tail.err" && fail "tail -f: $(cat "$TMP/tail.err")"
# a whole read of it is one version, as always
cmp -s "$mnt/history.csv" "$TMP/want.csv" || fail "cat history.csv differs from ckpt cat"
unmount_store "$mnt"

# idle: a descriptor idle past snapshot_idle (its snapshot given up) still follows
store=$TMP/idle
train "$store" --epochs 2 >"$TMP/train.log" 2>&1 || fail "ckpt-train: $(tail -n 3 "$TMP/train.log")"
mount_store "$store" "$mnt" -o snapshot_idle=1
"$PY" "$(dirname "$0")/mount_follow.py" idle "$mnt" "$BIN/ckpt" "$store" -- \
	"$BIN/ckpt-train" --store "$store" --resume --epochs 6 --threads 1 --quiet ||
	fail "an open history.csv idle past snapshot_idle did not follow the appended rows"
unmount_store "$mnt"

# retain: --keep-last 2 deletes the oldest row with each commit: the open file keeps its bytes
store=$TMP/retain
train "$store" --epochs 3 --keep-last 2 >"$TMP/train.log" 2>&1 ||
	fail "ckpt-train: $(tail -n 3 "$TMP/train.log")"
mount_store "$store" "$mnt"
"$PY" "$(dirname "$0")/mount_follow.py" retain "$mnt" "$BIN/ckpt" "$store" -- \
	"$BIN/ckpt-train" --store "$store" --resume --epochs 6 --keep-last 2 --threads 1 --quiet ||
	fail "an open history.csv whose rows were deleted changed"
unmount_store "$mnt"

# gc: `ckpt gc --keep-last 2` deletes rows under an open descriptor; read again from 0 it
# reads the store's history.csv now, as many bytes as fstat says
store=$TMP/gc
train "$store" --epochs 10 >"$TMP/train.log" 2>&1 || fail "ckpt-train: $(tail -n 3 "$TMP/train.log")"
mount_store "$store" "$mnt"
"$PY" "$(dirname "$0")/mount_follow.py" gc "$mnt" "$BIN/ckpt" "$store" -- \
	"$BIN/ckpt" gc "$store" --keep-last 2 ||
	fail "an open history.csv read again from 0 after ckpt gc did not read the store's"
unmount_store "$mnt"

# tail -f and tail -F of a run resumed with --keep-last 2: each commit deletes a row; when tail
# finds the size below its position it reports the file truncated and reads it again from 0,
# getting the store's rows now (not the old version's bytes: spliced rows). It decides by size
# alone, and a commit that keeps the size at or above its position goes unnoticed, so a last
# `ckpt gc --keep-last 1` makes the final file shorter than any it read: then both end on the
# final row and never print a torn or spliced line
store=$TMP/tail
train_and_mount "$store" 10
start_tail tailf -f
tfpid=$tail_pid
start_tail tailF -F
tFpid=$tail_pid
train "$store" --resume --epochs 22 --keep-last 2 >"$TMP/train.log" 2>&1 ||
	fail "ckpt-train --resume: $(tail -n 3 "$TMP/train.log")"
"$BIN/ckpt" gc "$store" --keep-last 1 >/dev/null || fail "ckpt gc --keep-last 1"
"$BIN/ckpt" cat "$store" history.csv >"$TMP/want.csv" || fail "ckpt cat history.csv"
last=$(tail -n 1 "$TMP/want.csv")
header=$(head -n 1 "$TMP/want.csv")
# a row: as many fields as the header, epoch and step numbers, a commit time, best 0 or 1
fields=$(awk -F, 'NR == 1 { print NF }' "$TMP/want.csv")
for out in tailf tailF; do
	deadline=$((SECONDS + 30))
	while [ "$(tail -n 1 "$TMP/$out.out")" != "$last" ] && [ $SECONDS -lt $deadline ]; do
		sleep 0.2
	done
	[ "$(tail -n 1 "$TMP/$out.out")" = "$last" ] ||
		fail "$out: the last line is not the final row $last: $(tail -n 3 "$TMP/$out.out"; cat "$TMP/$out.err")"
	bad=$(HEADER=$header awk -F, -v n="$fields" '
		$0 == ENVIRON["HEADER"] { next }
		NF != n || $1 !~ /^[0-9]+$/ || $2 !~ /^[0-9]+$/ || $3 !~ /^[0-9-]+T[0-9:.]+Z$/ ||
		$NF !~ /^[01]$/ { print; exit }' "$TMP/$out.out")
	[ -z "$bad" ] || fail "$out printed a line that is no row: $bad"
	grep -qv -e 'file truncated' -e 'following' "$TMP/$out.err" && fail "$out: $(cat "$TMP/$out.err")"
done
kill "$tfpid" "$tFpid" && wait "$tfpid" "$tFpid" 2>/dev/null
unmount_store "$mnt"
echo "test_mount_follow: ok"
