#!/usr/bin/env bash
# tests/reliability/readers.sh - concurrent readers over a mount while training commits epochs
# and retention deletes old ones.
#
# usage: readers.sh [--readers N] [--epochs E] [--keep-last K] [--layers L] [--seed S]
#                   [--min-mib M]
#
# ckpt-train writes E epochs with --keep-last K; the store is mounted as soon as it exists and
# N reader processes (tests/reliability/reader.py) loop over best/, latest/, random epochs and
# `ckpt cat` until training ends, checking every file against the stored CRC-32s. Then the
# final state is checked (latest, K epochs left, ckpt verify). --keep-last 0 keeps everything;
# with big --layers the store outgrows its initial 64 MiB map while the readers read
# (--min-mib 70 checks that data.mdb did grow past it). Prints
# "FIGURES trials=.. faults=.. reads=.. mismatches=.. failures=..". Exit 0 if all passed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../integration/mount_lib.sh"

readers=4 epochs=30 keep=2 layers=784,128,10 seed=$(date +%s) min_mib=0
while [ $# -gt 0 ]; do
	case $1 in
	--readers) readers=$2; shift 2 ;;
	--epochs) epochs=$2; shift 2 ;;
	--keep-last) keep=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--layers) layers=$2; shift 2 ;;
	--min-mib) min_mib=$2; shift 2 ;;
	*) echo "readers.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
require_fuse
# CKPT_BIN_DIR: test other builds of the programs (e.g. sanitized ones)
BIN=${CKPT_BIN_DIR:-$BIN}
mkdir -p "$TMP/bin" && cp "$BIN/ckpt" "$BIN/ckpt-train" "$BIN/ckptfs" "$TMP/bin/" || fail "copy binaries"
BIN=$TMP/bin
store=$TMP/store mnt=$TMP/mnt

retention=()
[ "$keep" -gt 0 ] && retention=(--keep-last "$keep")
"$BIN/ckpt-train" --store "$store" --data synthetic --layers "$layers" --val-split 1000 \
	--batch-size 128 --epochs "$epochs" "${retention[@]}" --threads 1 --quiet \
	>"$TMP/train.log" 2>&1 &
wpid=$!
PIDS+=("$wpid")
for _ in $(seq 1 200); do
	"$BIN/ckpt" info "$store" >/dev/null 2>&1 && break
	kill -0 "$wpid" 2>/dev/null || fail "ckpt-train exited early: $(tail -n 3 "$TMP/train.log")"
	sleep 0.02
done
mount_store "$store" "$mnt"
rpids=()
for i in $(seq 1 "$readers"); do
	python3 "$HERE/reader.py" "$mnt" "$store" "$BIN/ckpt" "$TMP/stop" $((seed + i)) \
		>"$TMP/reader$i.json" 2>"$TMP/reader$i.err" &
	rpids+=($!)
	PIDS+=($!)
done
wait "$wpid"
train_rc=$?
touch "$TMP/stop"
failures=0 reads=0 mismatches=0 errors=0 enoent=0 bytes=0 loops=0 unverified=0
for i in $(seq 1 "$readers"); do
	wait "${rpids[$((i - 1))]}"
	rc=$?
	line=$(cat "$TMP/reader$i.json")
	[ $rc -eq 0 ] || { failures=$((failures + 1)); echo "reader $i FAILED: $line $(cat "$TMP/reader$i.err")"; }
	eval "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); print(" ".join(f"r_{k}={v}" for k,v in d.items()))' "$line")"
	reads=$((reads + ${r_reads:-0})) mismatches=$((mismatches + ${r_mismatches:-0}))
	errors=$((errors + ${r_errors:-0})) enoent=$((enoent + ${r_enoent:-0}))
	bytes=$((bytes + ${r_bytes:-0})) loops=$((loops + ${r_loops:-0}))
	unverified=$((unverified + ${r_unverified:-0}))
done
[ $train_rc -eq 0 ] || { failures=$((failures + 1)); echo "FAIL: ckpt-train: $(tail -n 3 "$TMP/train.log")"; }
sleep 1.1 # the root listing and best/latest have 0.5 s timeouts
n=$(ls "$mnt" | grep -c '^epoch-')
left=$("$BIN/ckpt" info "$store" | sed -n 's/^checkpoints: //p')
[ "$n" = "$left" ] || { failures=$((failures + 1)); echo "FAIL: mount shows $n epochs, store has $left"; }
[ "$(readlink "$mnt/latest")" = "$(printf 'epoch-%04d' "$epochs")" ] ||
	{ failures=$((failures + 1)); echo "FAIL: latest -> $(readlink "$mnt/latest")"; }
size=$("$BIN/ckpt" info "$store" | sed -n 's/^file-size: //p')
[ $((size / 1048576)) -ge "$min_mib" ] ||
	{ failures=$((failures + 1)); echo "FAIL: data.mdb is $((size / 1048576)) MiB, expected >= $min_mib"; }
"$BIN/ckpt" verify "$store" >/dev/null 2>"$TMP/verify.err" ||
	{ failures=$((failures + 1)); echo "FAIL: ckpt verify: $(cat "$TMP/verify.err")"; }
unmount_store "$mnt"
[ "$reads" -gt 0 ] || { failures=$((failures + 1)); echo "FAIL: the readers read nothing"; }
echo "readers: $readers readers, $loops loops over $epochs epochs (keep-last $keep): $reads files" \
	"read ($((bytes / 1048576)) MiB), $unverified without CRCs (epoch gone before ckpt show)," \
	"$enoent ENOENT (epoch removed by retention, or best/latest before the first commit), $errors other errors, $mismatches mismatches; data.mdb $((size / 1048576)) MiB"
echo "FIGURES trials=1 faults=0 reads=$reads mismatches=$mismatches failures=$failures"
[ "$failures" -eq 0 ]
