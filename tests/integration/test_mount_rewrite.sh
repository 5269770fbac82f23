#!/usr/bin/env bash
# tests/integration/test_mount_rewrite.sh - a run resumed from an earlier checkpoint commits the
# epochs after it again (same names, same inode numbers, new files). A mount that had those
# files in the kernel's cache (stat by path, no directory listing) must show the new sizes and
# commit times within a second, never the old ones for the 300 s attribute timeout (an old,
# smaller size made the kernel serve a rewritten model.safetensors cut short).
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse
trainer_usable || fail "build/bin/ckpt-train is missing or has no synthetic data (run make)"

store=$TMP/store
mnt=$TMP/mnt
make_store "$store" 3
mount_store "$store" "$mnt"

files="metrics.json model/fc1.weight.npy model.safetensors model.pt checkpoint.pt"
for f in $files; do
	stat -c %Y "$mnt/epoch-0003/$f" >/dev/null || fail "stat epoch-0003/$f"
	cat "$mnt/epoch-0003/$f" >/dev/null || fail "read epoch-0003/$f"
done
stat -c %Y "$mnt/epoch-0003" >/dev/null || fail "stat epoch-0003"
sleep 1.1 # the rewrite's commit times differ from the first ones in whole seconds too

"$BIN/ckpt-train" --store "$store" --data synthetic --resume 1 --epochs 3 --quiet \
	>"$TMP/resume.log" 2>&1 || fail "ckpt-train --resume 1: $(tail -n 3 "$TMP/resume.log")"
time_ns=$("$BIN/ckpt" cat "$store" epoch-0003/metrics.json |
	"$PY" -c 'import json, sys; print(json.load(sys.stdin)["time_ns"])') ||
	fail "ckpt cat epoch-0003/metrics.json"
want=$((time_ns / 1000000000))
# the mount's watcher polls twice a second: within a second normally, 5 s on a loaded box
for _ in $(seq 1 200); do
	[ "$(stat -c %Y "$mnt/epoch-0003/model.pt")" = "$want" ] && break
	sleep 0.1
done
for f in $files; do
	got=$(stat -c %Y "$mnt/epoch-0003/$f") || fail "stat epoch-0003/$f after the rewrite"
	[ "$got" = "$want" ] ||
		fail "epoch-0003/$f: st_mtime $got after the epoch was committed again at $want (stale attributes)"
	size=$(stat -c %s "$mnt/epoch-0003/$f")
	"$BIN/ckpt" cat "$store" "epoch-0003/$f" >"$TMP/want" || fail "ckpt cat epoch-0003/$f"
	[ "$size" = "$(stat -c %s "$TMP/want")" ] || fail "epoch-0003/$f: st_size $size, file has $(stat -c %s "$TMP/want")"
	cmp -s "$TMP/want" "$mnt/epoch-0003/$f" || fail "epoch-0003/$f: the mount serves other bytes than ckpt cat"
done
got=$(stat -c %Y "$mnt/epoch-0003") || fail "stat epoch-0003"
[ "$got" = "$want" ] || fail "epoch-0003/: st_mtime $got, committed again at $want"
unmount_store "$mnt"
echo "test_mount_rewrite: ok"
