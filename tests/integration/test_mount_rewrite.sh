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

# a resume that rewrites epoch 2 but not epoch 3: the newest commit is epoch 2's. The root,
# history.csv, best and latest carry its time (rsync's quick check of history.csv, whose row 2
# changed, may keep the same size), and stat of history.csv gives the new size at once: live
# files' attributes are never cached (tail, wc -c and rsync trust st_size)
cat "$mnt/history.csv" >/dev/null && stat "$mnt/history.csv" "$mnt" "$mnt/latest" >/dev/null ||
	fail "stat/read history.csv"
sleep 1.1
"$BIN/ckpt-train" --store "$store" --data synthetic --resume 1 --epochs 2 --quiet \
	>"$TMP/resume2.log" 2>&1 || fail "ckpt-train --resume 1 --epochs 2: $(tail -n 3 "$TMP/resume2.log")"
size=$(stat -c %s "$mnt/history.csv") && body=$(cat "$mnt/history.csv" | wc -c) ||
	fail "history.csv after the second resume"
[ "$size" = "$body" ] || fail "history.csv: st_size $size right after a commit, a read gives $body bytes"
"$BIN/ckpt" cat "$store" history.csv | cmp -s - "$mnt/history.csv" ||
	fail "history.csv differs from ckpt cat right after a commit"
t2=$("$BIN/ckpt" cat "$store" epoch-0002/metrics.json |
	"$PY" -c 'import json, sys; print(json.load(sys.stdin)["time_ns"] // 1000000000)') ||
	fail "ckpt cat epoch-0002/metrics.json"
[ "$t2" -gt "$want" ] || fail "epoch 2 was committed at $t2, not after epoch 3 ($want)"
for _ in $(seq 1 50); do # the root's attributes are cached for 0.5 s
	[ "$(stat -c %Y "$mnt")" = "$t2" ] && break
	sleep 0.1
done
for f in "" /history.csv /latest /best; do
	got=$(stat -c %Y "$mnt$f") || fail "stat mnt$f"
	[ "$got" = "$t2" ] || fail "mnt$f: st_mtime $got, the newest commit (epoch 2, resumed) is $t2"
done
[ "$(readlink "$mnt/latest")" = epoch-0003 ] || fail "latest is $(readlink "$mnt/latest"), not epoch-0003"

# a store restored in place under the mount (a new data.mdb, as rsync or cp of a backup makes):
# the mount cannot follow it and says so, once, in its log; it goes on serving what it opened
cp "$store/data.mdb" "$TMP/restored" && mv "$TMP/restored" "$store/data.mdb" || fail "replace data.mdb"
for _ in $(seq 1 50); do
	grep -q "data.mdb is no longer the file this mount opened" "$TMP/ckptfs.log" && break
	sleep 0.1
done
[ "$(grep -c "data.mdb is no longer the file this mount opened" "$TMP/ckptfs.log")" = 1 ] ||
	fail "a replaced data.mdb was not logged once: $(cat "$TMP/ckptfs.log")"
[ "$(readlink "$mnt/latest")" = epoch-0003 ] || fail "the mount stopped serving after data.mdb was replaced"
unmount_store "$mnt"
echo "test_mount_rewrite: ok"
