#!/usr/bin/env bash
# tests/integration/test_store_fulldisk_gc.sh - a run fills a 10 MiB tmpfs and fails with "no
# space left"; deleting checkpoints (ckpt gc --keep-last 2, or --resume --keep-last 2, whose
# retention runs before training) then gives the resumed run the room it needs: it reaches its
# last epoch on the same full disk; and a gc on a disk full to the last block deletes step by
# step, also when another file filled the disk (root: it mounts the tmpfs; skipped otherwise).
. "$(dirname "$0")/lib.sh"
need_built "$TRAIN" "$CKPT"
disk=$WORK/disk
mkdir "$disk" || fail "mkdir"
mount -t tmpfs -o size=10m tmpfs "$disk" 2>/dev/null || skip "cannot mount a tmpfs (needs root)"
cleanup() {
	umount "$disk" 2>/dev/null || umount -l "$disk"
	lib_cleanup
}
trap cleanup EXIT
store=$disk/run
common=(--data synthetic --layers 784,256,10 --epochs 10 --quiet)

for how in "ckpt gc" "resume --keep-last 2"; do
	rm -rf "$store"
	$TRAIN --store "$store" "${common[@]}" 2>"$WORK/full.err" && fail "10 epochs fit on 10 MiB: use a smaller disk"
	grep -q "no space left on device" "$WORK/full.err" || fail "not a full disk: $(cat "$WORK/full.err")"
	resume=()
	if [ "$how" = "ckpt gc" ]; then
		$CKPT gc "$store" --keep-last 2 >/dev/null 2>"$WORK/gc.err" || fail "ckpt gc: $(cat "$WORK/gc.err")"
	else
		resume=(--keep-last 2)
	fi
	$TRAIN --store "$store" --resume "${resume[@]}" "${common[@]}" 2>"$WORK/resume.err" ||
		fail "$how, then --resume: $(cat "$WORK/resume.err")"
	$CKPT info "$store" | grep -qx "latest: epoch-0010" || fail "$how: the resumed run did not reach epoch 10"
	$CKPT verify "$store" >/dev/null || fail "$how: ckpt verify"
done
# a disk full to the last block with large tensors (4 MiB each): deleting many checkpoints in
# one transaction needs new pages (LMDB copies each page it changes, and records every freed
# one) that are not there; gc then deletes them one at a time, each step's pages serving the
# next. A 100 MiB tmpfs holds 7 such epochs; one gc of 5 of them failed with ENOSPC.
umount "$disk" && mount -t tmpfs -o size=100m tmpfs "$disk" || fail "cannot remount the tmpfs at 100 MiB"
big=(--data synthetic --layers 784,1024,1024,10 --val-split 9000 --threads 1 --quiet --no-sync)
$TRAIN --store "$store" "${big[@]}" --epochs 30 2>"$WORK/full.err" && fail "30 epochs fit on 100 MiB"
grep -q "no space left on device" "$WORK/full.err" || fail "not a full disk: $(cat "$WORK/full.err")"
$CKPT gc "$store" --keep-last 1 >"$WORK/gc.out" 2>"$WORK/gc.err" ||
	fail "ckpt gc --keep-last 1 on the full disk: $(cat "$WORK/gc.err")"
$CKPT verify "$store" >/dev/null || fail "ckpt verify after gc on the full disk"
info=$($CKPT info "$store")
grep -qx "keep-last: 1" <<<"$info" && [ "$(sed -n 's/^checkpoints: //p' <<<"$info")" -le 2 ] ||
	fail "gc on the full disk: $(cat "$WORK/gc.out"); $info"
$TRAIN --store "$store" --resume "${big[@]}" --epochs 12 2>"$WORK/resume.err" ||
	fail "--resume after gc on the full disk: $(cat "$WORK/resume.err")"
# another file filled the disk to the last byte: gc's first step commits into lock.mdb's
# reserve, and the resumed run then reuses what gc freed (both failed with ENOSPC)
umount "$disk" && mount -t tmpfs -o size=16m tmpfs "$disk" || fail "cannot remount the tmpfs at 16 MiB"
$TRAIN --store "$store" --data synthetic --layers 784,128,10 --epochs 4 --quiet || fail "4 epochs on 16 MiB"
dd if=/dev/zero of="$disk/fill" bs=4k >/dev/null 2>&1
dd if=/dev/zero of="$disk/fill2" bs=1 >/dev/null 2>&1
$CKPT gc "$store" --keep-last 2 >"$WORK/gc.out" 2>"$WORK/gc.err" ||
	fail "ckpt gc on a disk another file filled: $(cat "$WORK/gc.err")"
# each commit's retention frees pages the next commit may reuse only after one more commit:
# a commit that finds the disk full makes that commit and tries again
$TRAIN --store "$store" --resume --epochs 8 --keep-last 2 --quiet 2>"$WORK/resume.err" ||
	fail "--resume after gc on a disk another file filled: $(cat "$WORK/resume.err")"
$CKPT info "$store" | grep -qx "latest: epoch-0008" || fail "the resumed run did not reach epoch 8"
$CKPT verify "$store" >/dev/null || fail "ckpt verify after gc and resume on the full disk"
echo "ok: after ckpt gc and after --resume --keep-last 2, the run went on on the full disk; gc works on a disk full to the last block, also one another file filled"
