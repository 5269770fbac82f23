#!/usr/bin/env bash
# tests/integration/test_mount_follow.sh - an open history.csv follows appended rows (tail -f,
# readline followers) while ckpt-train commits, best flags flipping in place included; one
# whose rows retention deleted keeps its version (no torn bytes).
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse
trainer_usable || { echo "test_mount_follow: skipped (no ckpt-train)"; exit 0; }

# layers wide enough that an epoch takes a while: a follower polls between commits
train() {
	"$BIN/ckpt-train" --store "$1" --data synthetic --layers 784,256,128,10 --threads 1 --quiet "${@:2}"
}

# grow: synthetic data improves for a few epochs, so best moves and old rows' flags flip
store=$TMP/grow
mnt=$TMP/mnt
train "$store" --epochs 2 >"$TMP/train.log" 2>&1 || fail "ckpt-train: $(tail -n 3 "$TMP/train.log")"
mount_store "$store" "$mnt"
tail -n +1 -f "$mnt/history.csv" >"$TMP/tail.out" 2>"$TMP/tail.err" &
tpid=$!
PIDS+=("$tpid")
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
echo "test_mount_follow: ok"
