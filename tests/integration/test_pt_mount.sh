#!/usr/bin/env bash
# tests/integration/test_pt_mount.sh - model.pt, checkpoint.pt and model.safetensors read
# through a real mount: exact st_size, bytes equal to `ckpt export`, random pread ranges equal
# the whole file, torch.load / unzip -t / safetensors_check.py (and the reference checker, where
# there is one) straight from the mount, and the map_location mount option (cpu default, keep and
# cuda:N fail as PyTorch does for GPU files on a CPU-only machine, a bad value refuses to mount). Always unmounts. Exit 0 pass, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$ROOT
ckpt=$CKPT
ckptfs=$CKPTFS
mkstore=${MKSTORE_BIN:-$TOOLS/mkstore}
need_built "$ckpt" "$ckptfs" "$mkstore"
require_fuse
need_torch
py=$PY

tmp=$WORK
pids=()
mounts=()
cleanup() {
	for m in "${mounts[@]+"${mounts[@]}"}"; do
		mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m" 2>/dev/null
	done
	for p in "${pids[@]+"${pids[@]}"}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	lib_cleanup
}
trap cleanup EXIT

mount_store() { # STORE MNT [OPTIONS]
	mkdir -p "$2"
	local opts=()
	[ -n "${3:-}" ] && opts=(-o "$3")
	"$ckptfs" "$1" "$2" -f "${opts[@]}" 2>"$2.log" &
	pids+=($!)
	mounts+=("$2")
	for _ in $(seq 100); do
		mountpoint -q "$2" && [ -e "$2/run.json" ] && return 0
		kill -0 "${pids[-1]}" 2>/dev/null || fail "ckptfs exited: $(cat "$2.log")"
		sleep 0.1
	done
	fail "mount of $1 did not appear: $(cat "$2.log")"
}

unmount() { # MNT
	fusermount3 -u "$1" || fail "fusermount3 -u $1"
	local p=${pids[-1]}
	for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	wait "$p" || fail "ckptfs of $1 exited non-zero: $(cat "$1.log")"
}

S=$tmp/store
"$mkstore" "$S" --epochs 2 --layers 64,256,10 --optimizer adam --dtypes --device cuda:0 \
	--chunk-size 4096 --no-sync >/dev/null
M=$tmp/mnt
mount_store "$S" "$M"
args=()
for e in 1 2; do
	dir=$(printf 'epoch-%04d' $e)
	mkdir -p "$tmp/x$e"
	for f in model.pt checkpoint.pt model.safetensors; do
		fmt=pt
		[ $f = checkpoint.pt ] && fmt=checkpoint
		[ $f = model.safetensors ] && fmt=safetensors
		"$ckpt" export "$S" $e --format $fmt -o "$tmp/x$e/$f"
		[ "$(stat -c %s "$M/$dir/$f")" = "$(stat -c %s "$tmp/x$e/$f")" ] ||
			fail "$dir/$f: st_size differs from the exported file"
		cmp -s "$M/$dir/$f" "$tmp/x$e/$f" || fail "$dir/$f: mount and export differ"
		args+=(ranges "$M/$dir/$f" "$tmp/x$e/$f" 150 ";")
	done
	unzip -tq "$M/$dir/model.pt" >/dev/null || fail "unzip -t $dir/model.pt"
	unzip -tq "$M/$dir/checkpoint.pt" >/dev/null || fail "unzip -t $dir/checkpoint.pt"
	safetensors_check "$M/$dir/model.safetensors" --dump "$tmp/dump$e" >/dev/null ||
		fail "safetensors-check rejects $dir/model.safetensors on the mount"
	args+=(state-vs-npy "$M/$dir/model.pt" "$M/$dir/model" ";"
		dump-vs-npy "$tmp/dump$e" "$M/$dir/model" ";"
		devices "$M/$dir/model.pt" cpu ";" devices "$M/$dir/checkpoint.pt" cpu ";"
		checkpoint "$M/$dir/checkpoint.pt" adam ";")
done
grep -q '"cuda:0"' "$M/epoch-0001/metrics.json" || fail "metrics.json lost the recorded device"
args+=(devices "$M/best/model.pt" cpu)
"$py" "$root/tests/integration/pt_check.py" "${args[@]}"
unmount "$M"

# -o map_location=keep: the recorded cuda:0, so torch.load fails as for a GPU-saved file
K=$tmp/keep
mount_store "$S" "$K" map_location=keep
D=$tmp/dev
mount_store "$S" "$D" map_location=cuda:1
"$ckpt" export "$S" 1 --format pt --map-location cuda:1 -o "$tmp/cuda1.pt"
cmp -s "$D/epoch-0001/model.pt" "$tmp/cuda1.pt" || fail "map_location=cuda:1 mount != export"
"$py" "$root/tests/integration/pt_check.py" cuda-error "$K/epoch-0001/model.pt" ";" \
	cuda-error "$K/latest/checkpoint.pt" ";" cuda-error "$D/epoch-0002/model.pt"
unmount "$D"
unmount "$K"

# a bad value: one clear line, non-zero exit, nothing mounted
B=$tmp/bad
mkdir -p "$B"
rc=0
"$ckptfs" "$S" "$B" -o map_location=gpu0 2>"$tmp/bad.err" || rc=$?
[ $rc -ne 0 ] || { fusermount3 -u "$B"; fail "ckptfs accepted map_location=gpu0"; }
grep -q 'map_location' "$tmp/bad.err" || fail "no clear message: $(cat "$tmp/bad.err")"
mountpoint -q "$B" && fail "ckptfs left $B mounted after refusing the option"
echo "mount: .pt/.safetensors bytes, ranges, loaders and map_location checked"
