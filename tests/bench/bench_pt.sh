#!/usr/bin/env bash
# tests/bench/bench_pt.sh - whole-checkpoint files from the mount against their peers on disk:
#   torch.load(MOUNT/epoch-0001/model.pt) vs torch.load of the file torch.save writes for the
#   same tensors on a regular file system, and reading model.safetensors from the mount
#   (cat) vs cat of a same-size regular file. First read and best of REPEAT; ratios are
#   peer time / mount time (>= 0.9 is the goal). BENCH_MIB sets the model size (default 512).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
ckptfs=${CKPTFS_BIN:-$root/build/bin/ckptfs}
mkstore=${MKSTORE_BIN:-$root/build/tests/tools/mkstore}
mib=${BENCH_MIB:-512}
repeat=${REPEAT:-5}
[ -x "$mkstore" ] || make --no-print-directory "build/tests/tools/mkstore" >/dev/null
for tool in "$ckptfs" "$mkstore"; do
	[ -x "$tool" ] || { echo "bench_pt: $tool not built" >&2; exit 1; }
done
py=
for cand in "${PYTHON:-}" python3 /usr/bin/python3; do
	if [ -n "$cand" ] && "$cand" -c 'import torch' 2>/dev/null; then py=$cand; break; fi
done
[ -n "$py" ] || { echo "bench_pt: no python3 with torch" >&2; exit 1; }
[ -w /dev/fuse ] || { echo "bench_pt: /dev/fuse not usable" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
	mountpoint -q "$tmp/mnt" 2>/dev/null && fusermount3 -u "$tmp/mnt"
	[ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
	rm -rf "$tmp"
}
trap cleanup EXIT

"$mkstore" "$tmp/store" --epochs 1 --layers 784,256,10 --big-mib "$mib" --no-sync >/dev/null
mkdir "$tmp/mnt"
"$ckptfs" "$tmp/store" "$tmp/mnt" -f 2>"$tmp/ckptfs.log" &
pid=$!
for _ in $(seq 100); do
	mountpoint -q "$tmp/mnt" && [ -e "$tmp/mnt/run.json" ] && break
	sleep 0.1
done
mountpoint -q "$tmp/mnt" || { echo "bench_pt: mount failed: $(cat "$tmp/ckptfs.log")" >&2; exit 1; }

"$py" - "$tmp/mnt/epoch-0001" "$tmp" "$repeat" <<'PY'
import os, shutil, subprocess, sys, time
import torch
epoch_dir, tmp, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])

def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t

def series(fn):
    times = [timed(fn) for _ in range(repeat)]
    return times[0], min(times)

mount_pt = os.path.join(epoch_dir, 'model.pt')
size = os.path.getsize(mount_pt)
# the peer: what torch.save writes for the same tensors, on the regular file system
sd = torch.load(mount_pt, weights_only=True)
disk_pt = os.path.join(tmp, 'saved.pt')
torch.save(sd, disk_pt)
del sd
m_first, m_best = series(lambda: torch.load(mount_pt, weights_only=True))
d_first, d_best = series(lambda: torch.load(disk_pt, weights_only=True))

mount_st = os.path.join(epoch_dir, 'model.safetensors')
st_size = os.path.getsize(mount_st)
disk_st = os.path.join(tmp, 'same-size.bin')
with open(disk_st, 'wb') as f:
    f.truncate(0)
    chunk = os.urandom(1 << 20)
    left = st_size
    while left:
        n = min(left, len(chunk))
        f.write(chunk[:n])
        left -= n
cat = lambda p: (lambda: subprocess.run(['cat', p], stdout=subprocess.DEVNULL, check=True))
sm_first, sm_best = series(cat(mount_st))
sd_first, sd_best = series(cat(disk_st))

mib = 1 << 20
print('model.pt %.0f MiB: torch.load from mount first %.3f s, best %.3f s (%.0f MiB/s)'
      % (size / mib, m_first, m_best, size / mib / m_best))
print('                 torch.load of torch.save file first %.3f s, best %.3f s (%.0f MiB/s)'
      % (d_first, d_best, size / mib / d_best))
print('model.safetensors %.0f MiB: cat from mount first %.3f s, best %.3f s (%.0f MiB/s)'
      % (st_size / mib, sm_first, sm_best, st_size / mib / sm_best))
print('                 cat of a regular file first %.3f s, best %.3f s (%.0f MiB/s)'
      % (sd_first, sd_best, st_size / mib / sd_best))
print('ratio torch.load model.pt (disk time / mount time): first %.2f, best %.2f (goal >= 0.9)'
      % (d_first / m_first, d_best / m_best))
print('ratio read model.safetensors (regular / mount):   first %.2f, best %.2f (goal >= 0.9)'
      % (sd_first / sm_first, sd_best / sm_best))
PY
