#!/usr/bin/env bash
# tests/valgrind/run.sh - memcheck over the real programs (make test-valgrind)
#
# Runs under `valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect`:
#   ckpt-train   a short run (synthetic data, 2 epochs) and a --resume of it
#   ckpt         info, log, show, verify, ls, cat, export, gc, backup, and one error path (missing store)
#   ckptfs       a foreground mount: ls, every file read, readlink, then fusermount3 -u
# Each run must report no memory error and no definite/indirect leak (exit status 99 is
# valgrind's error code here). Prints one line per run; exit 1 if any failed.
set -uo pipefail
. "$(dirname "$0")/../integration/mount_lib.sh"
command -v valgrind >/dev/null || fail "valgrind is not installed (scripts/deps.sh extra)"
VG=(valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
	--show-leak-kinds=definite,indirect --track-fds=no)
failures=0 runs=0
# vg NAME EXPECTED_RC CMD...
vg() {
	local name=$1 want=$2
	shift 2
	runs=$((runs + 1))
	"${VG[@]}" --log-file="$TMP/vg.$runs.log" "$@" >"$TMP/vg.$runs.out" 2>"$TMP/vg.$runs.err"
	local rc=$?
	if [ $rc -eq 99 ] || [ -s "$TMP/vg.$runs.log" ]; then
		failures=$((failures + 1))
		echo "valgrind $name: FAIL (memcheck errors)"
		head -n 40 "$TMP/vg.$runs.log"
	elif [ $rc -ne "$want" ]; then
		failures=$((failures + 1))
		echo "valgrind $name: FAIL (exit $rc, expected $want): $(tail -n 3 "$TMP/vg.$runs.err")"
	else
		echo "valgrind $name: clean"
	fi
}

store=$TMP/store
export OPENBLAS_NUM_THREADS=1
vg "ckpt-train (2 epochs)" 0 "$BIN/ckpt-train" --store "$store" --data synthetic --layers 784,16,10 \
	--val-split 500 --epochs 2 --threads 1 --quiet
vg "ckpt-train --resume" 0 "$BIN/ckpt-train" --store "$store" --resume --epochs 3 --quiet
vg "ckpt info" 0 "$BIN/ckpt" info "$store"
vg "ckpt log" 0 "$BIN/ckpt" log "$store"
vg "ckpt show" 0 "$BIN/ckpt" show "$store" latest
vg "ckpt verify" 0 "$BIN/ckpt" verify "$store"
vg "ckpt ls" 0 "$BIN/ckpt" ls "$store" epoch-0001/model
vg "ckpt cat" 0 "$BIN/ckpt" cat "$store" epoch-0002/checkpoint.pt
vg "ckpt export" 0 "$BIN/ckpt" export "$store" best --format safetensors -o "$TMP/best.safetensors"
vg "ckpt gc" 0 "$BIN/ckpt" gc "$store" --keep-last 2
vg "ckpt backup --verify" 0 "$BIN/ckpt" backup "$store" "$TMP/backup" --verify
vg "ckpt info (missing store)" 1 "$BIN/ckpt" info "$TMP/nothing"

# ckptfs: mount under valgrind (slow start: wait up to 30 s), read everything, unmount
require_fuse
mnt=$TMP/mnt
mkdir -p "$mnt"
runs=$((runs + 1))
"${VG[@]}" --log-file="$TMP/vg.fs.log" "$BIN/ckptfs" "$store" "$mnt" -f 2>"$TMP/ckptfs.log" &
pid=$!
PIDS+=("$pid")
MOUNTS+=("$mnt")
for _ in $(seq 1 300); do
	is_mounted "$mnt" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
is_mounted "$mnt" || fail "ckptfs under valgrind did not mount: $(cat "$TMP/ckptfs.log")"
ls -lR "$mnt" >/dev/null || fail "ls -lR under valgrind"
readlink "$mnt/latest" >/dev/null || fail "readlink latest"
find "$mnt/" -type f -exec cat {} + | wc -c >"$TMP/bytes" || fail "reading every file"
fusermount3 -u "$mnt" || fail "fusermount3 -u"
wait "$pid"
rc=$?
if [ $rc -ne 0 ] || [ -s "$TMP/vg.fs.log" ]; then
	failures=$((failures + 1))
	echo "valgrind ckptfs mount-read-unmount: FAIL (exit $rc)"
	head -n 40 "$TMP/vg.fs.log"
else
	echo "valgrind ckptfs mount-read-unmount ($(cat "$TMP/bytes") bytes read): clean"
fi
echo "valgrind: $runs runs, $failures failed"
[ $failures -eq 0 ]
