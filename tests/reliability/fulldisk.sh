#!/usr/bin/env bash
# tests/reliability/fulldisk.sh - a store on a small tmpfs fills up during training
#
# usage: fulldisk.sh [--size-kb N] [--rounds R]
#
# Each round mounts a tmpfs of N KiB (root only; skipped otherwise), trains into it until the
# disk is full and checks: ckpt-train exits non-zero with one clear line naming the epoch and
# "No space left", every earlier checkpoint verifies, is listed by `ckpt log` and reads through
# a ckptfs mount exactly as `ckpt cat` renders it; once the disk has room again, --resume goes
# on. The tmpfs is always unmounted. Rounds use growing sizes so the disk fills at different
# points (store creation, a commit, map growth).
# Prints "FIGURES trials=.. faults=.. reads=.. mismatches=.. failures=..".
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../integration/mount_lib.sh"

size_kb=3072 rounds=3
while [ $# -gt 0 ]; do
	case $1 in
	--size-kb) size_kb=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	*) echo "fulldisk.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: fulldisk.sh needs root to mount a tmpfs" >&2
	exit 77
fi
require_fuse
# CKPT_BIN_DIR: test other builds of the programs (e.g. sanitized ones)
BIN=${CKPT_BIN_DIR:-$BIN}
mkdir -p "$TMP/bin" && cp "$BIN/ckpt" "$BIN/ckpt-train" "$BIN/ckptfs" "$TMP/bin/" || fail "copy binaries"
BIN=$TMP/bin
TMPFS=()
cleanup_tmpfs() {
	local d
	for d in "${TMPFS[@]+"${TMPFS[@]}"}"; do
		mountpoint -q "$d" && umount "$d"
	done
	cleanup
}
trap cleanup_tmpfs EXIT

failures=0 reads=0 mismatches=0 faults=0
problem() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

# ---- no room even for the store: a clear error and nothing half-written
disk=$TMP/disk0
mkdir -p "$disk"
mount -t tmpfs -o size=16k tmpfs "$disk" || fail "mount tmpfs"
TMPFS+=("$disk")
"$BIN/ckpt-train" --store "$disk/store" --data synthetic --layers 784,128,10 --epochs 2 \
	--threads 1 --quiet >"$TMP/out" 2>"$TMP/err"
rc=$?
if [ $rc -eq 0 ] || [ $rc -ge 128 ] || [ "$(wc -l <"$TMP/err")" -ne 1 ]; then
	problem "store on a 16 KiB disk: exit $rc: $(cat "$TMP/err")"
elif ! grep -q "No space left" "$TMP/err"; then
	problem "store on a 16 KiB disk: the error does not say the disk is full: $(cat "$TMP/err")"
elif [ -e "$disk/store/data.mdb" ] && "$BIN/ckpt" info "$disk/store" >/dev/null 2>&1 &&
	[ "$("$BIN/ckpt" info "$disk/store" | sed -n 's/^checkpoints: //p')" != 0 ]; then
	problem "store on a 16 KiB disk: a checkpoint was half-written"
fi
faults=$((faults + 1))
echo "round 0 (16 KiB): ckpt-train exit $rc: $(cat "$TMP/err"); left: $(ls -A "$disk/store" 2>/dev/null | tr '\n' ' ')"
umount "$disk"

# ---- a disk full to the last block: LMDB maps lock.mdb after sizing it with ftruncate, and
# the first page tmpfs cannot back raised SIGBUS in ckpt-train, in a read-write open of a store
# without lock.mdb, and then, through the sparse lock.mdb left, in every reader
disk=$TMP/diskfull
mkdir -p "$disk"
mount -t tmpfs -o size=1m tmpfs "$disk" || fail "mount tmpfs"
TMPFS+=("$disk")
"$BIN/ckpt-train" --store "$disk/st" --data synthetic --layers 784,8,10 --epochs 1 --threads 1 \
	--val-split 1000 --quiet >"$TMP/out" 2>&1 || fail "train on the 1 MiB disk: $(cat "$TMP/out")"
rm -f "$disk/st/lock.mdb"
dd if=/dev/zero of="$disk/fill" bs=4k >/dev/null 2>&1
expect_one_line() { # WHAT PATTERN CMD...: exit 1 or 2, one stderr line matching PATTERN
	local what=$1 pat=$2
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	if [ $rc -ne 1 ] && [ $rc -ne 2 ] || [ "$(wc -l <"$TMP/err")" -ne 1 ] || ! grep -qE "$pat" "$TMP/err"; then
		problem "$what on a full disk: exit $rc: $(head -c 300 "$TMP/err")"
	fi
}
expect_one_line "a new store" "[Nn]o space left" "$BIN/ckpt-train" --store "$disk/new" --data synthetic --epochs 1 --quiet
[ -e "$disk/new" ] && problem "a new store on a full disk left $(ls -A "$disk/new" | tr '\n' ' ')"
expect_one_line "--resume of a store without lock.mdb" "[Nn]o space left" "$BIN/ckpt-train" --store "$disk/st" --resume --epochs 2 --quiet
[ -e "$disk/st/lock.mdb" ] && problem "a refused --resume on a full disk left a lock.mdb"
truncate -s 65664 "$disk/st/lock.mdb" # a sparse one, as a crash mid-open leaves it
"$BIN/ckpt" info "$disk/st" >"$TMP/out" 2>"$TMP/err" && grep -q "^checkpoints: 1$" "$TMP/out" ||
	problem "ckpt info on a full disk with a sparse lock.mdb: $(cat "$TMP/err")"
"$BIN/ckpt" verify "$disk/st" >"$TMP/out" 2>"$TMP/err" || problem "ckpt verify on a full disk: $(cat "$TMP/err")"
faults=$((faults + 1))
echo "full disk: a new store and --resume refused in one line, readers read"
umount "$disk"

for round in $(seq 1 "$rounds"); do
	kb=$((size_kb + (round - 1) * 1100))
	disk=$TMP/disk$round
	mkdir -p "$disk"
	mount -t tmpfs -o size=${kb}k tmpfs "$disk" || fail "mount tmpfs"
	TMPFS+=("$disk")
	store=$disk/store
	"$BIN/ckpt-train" --store "$store" --data synthetic --layers 784,128,10 --val-split 1000 \
		--batch-size 256 --epochs 50 --threads 1 >"$TMP/out" 2>"$TMP/err"
	rc=$?
	last=$(sed -n 's|^epoch \([0-9]*\)/.*|\1|p' "$TMP/out" | tail -n 1)
	last=${last:-0}
	if [ $rc -eq 0 ]; then
		problem "round $round: 50 epochs fit in ${kb} KiB?"
	else
		faults=$((faults + 1))
		[ "$(wc -l <"$TMP/err")" -eq 1 ] || problem "round $round: stderr is not one line: $(cat "$TMP/err")"
		grep -q "No space left\|full" "$TMP/err" || problem "round $round: error does not say the disk is full: $(cat "$TMP/err")"
		[ $rc -lt 128 ] || problem "round $round: ckpt-train died of signal $((rc - 128))"
	fi
	echo "round $round (${kb} KiB): ckpt-train exit $rc after epoch $last: $(cat "$TMP/err")"
	if [ "$last" -eq 0 ]; then
		umount "$disk"
		continue
	fi
	"$BIN/ckpt" verify "$store" >"$TMP/verify" 2>&1 || problem "round $round: ckpt verify: $(cat "$TMP/verify")"
	n=$("$BIN/ckpt" log "$store" | awk 'NR > 1' | wc -l)
	[ "$n" -eq "$last" ] || problem "round $round: ckpt log lists $n epochs, $last were printed"
	mount_store "$store" "$TMP/mnt"
	for e in $(seq 1 "$last"); do
		d=$(printf 'epoch-%04d' "$e")
		for f in model.safetensors model/fc1.weight.npy optimizer/fc1.weight.momentum_buffer.npy; do
			reads=$((reads + 1))
			cmp -s "$TMP/mnt/$d/$f" <("$BIN/ckpt" cat "$store" "$d/$f") ||
				{ mismatches=$((mismatches + 1)); problem "round $round: $d/$f differs"; }
		done
	done
	unmount_store "$TMP/mnt"
	# the user makes room (here: the tmpfs grows) and resumes
	mount -o remount,size=$((kb * 2))k "$disk" || fail "remount tmpfs"
	"$BIN/ckpt-train" --store "$store" --resume --epochs $((last + 2)) --quiet >"$TMP/out" 2>"$TMP/err" ||
		problem "round $round: --resume after making room: $(cat "$TMP/err")"
	"$BIN/ckpt" verify "$store" >"$TMP/verify" 2>&1 || problem "round $round: verify after resume: $(cat "$TMP/verify")"
	echo "round $round: $last epochs intact and readable; with room again --resume reached epoch $((last + 2))"
	umount "$disk" || problem "umount $disk"
done
echo "fulldisk: $rounds rounds, $faults disk-full failures, $reads reads checked, $mismatches mismatches, $failures failures"
echo "FIGURES trials=$rounds faults=$faults reads=$reads mismatches=$mismatches failures=$failures"
[ "$failures" -eq 0 ]
