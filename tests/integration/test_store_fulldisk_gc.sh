#!/usr/bin/env bash
# tests/integration/test_store_fulldisk_gc.sh - a run fills an 8 MiB tmpfs and fails with "no
# space left"; deleting checkpoints (ckpt gc --keep-last 2, or --resume --keep-last 2, whose
# retention runs before training) then gives the resumed run the room it needs: it reaches its
# last epoch on the same full disk (root: it mounts the tmpfs; skipped otherwise).
. "$(dirname "$0")/lib.sh"
need_built "$TRAIN" "$CKPT"
disk=$WORK/disk
mkdir "$disk" || fail "mkdir"
mount -t tmpfs -o size=8m tmpfs "$disk" 2>/dev/null || skip "cannot mount a tmpfs (needs root)"
cleanup() {
	umount "$disk" 2>/dev/null || umount -l "$disk"
	lib_cleanup
}
trap cleanup EXIT
store=$disk/run
common=(--data synthetic --layers 784,256,10 --epochs 10 --quiet)

for how in "ckpt gc" "resume --keep-last 2"; do
	rm -rf "$store"
	$TRAIN --store "$store" "${common[@]}" 2>"$WORK/full.err" && fail "10 epochs fit on 8 MiB: use a smaller disk"
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
echo "ok: after ckpt gc and after --resume --keep-last 2, the run went on on the full disk"
