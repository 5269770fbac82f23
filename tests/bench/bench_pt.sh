#!/usr/bin/env bash
# tests/bench/bench_pt.sh - whole-checkpoint files from the mount against their peers on disk
#
# Peers: torch.load(MOUNT/epoch-0001/model.pt) against torch.load of the file torch.save writes
# for the same tensors; cat of MOUNT/epoch-0001/model.safetensors against cat of a regular file
# of the same size. Both peers live on the store's file system. Each pair is measured in the
# same cache state, alternating, ROUNDS times; medians, ratios = peer time / mount time
# (>= 0.9 is the goal):
#   cold    caches dropped before each read (echo 3 > /proc/sys/vm/drop_caches: needs root;
#           skipped otherwise) and a fresh mount, so the store's bytes come from disk as the
#           peer's do;
#   warm    both in the page cache (the mount's file read before: keep_cache);
#   first read from RAM: the store's data.mdb in the page cache and a fresh mount, so every
#           byte crosses FUSE once; against the FUSE ceiling (tests/bench/fuse_ceiling.c serving
#           the same size from memory: no FUSE file system does better here) and against the
#           peer in the page cache (which never crosses FUSE).
# BENCH_MIB sets the model size (default 512), ROUNDS the rounds (default 7).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
ckptfs=${CKPTFS_BIN:-$root/build/bin/ckptfs}
mkstore=${MKSTORE_BIN:-$root/build/tests/tools/mkstore}
mib=${BENCH_MIB:-512}
rounds=${ROUNDS:-7}
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
mkdir -p build/bench
ceiling=build/bench/fuse_ceiling
cc -O2 -std=c11 -D_GNU_SOURCE $(pkg-config --cflags fuse3) -o "$ceiling" \
	tests/bench/fuse_ceiling.c $(pkg-config --libs fuse3)

tmp=$(mktemp -d)
cleanup() {
	for m in "$tmp/mnt" "$tmp/ceiling"; do
		mountpoint -q "$m" 2>/dev/null && fusermount3 -u "$m"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

"$mkstore" "$tmp/store" --epochs 1 --layers 784,256,10 --big-mib "$mib" --no-sync >/dev/null
sync "$tmp/store/data.mdb"
mkdir "$tmp/mnt" "$tmp/ceiling"

"$py" - "$ckptfs" "$root/$ceiling" "$tmp" "$rounds" <<'PY'
import os, statistics, subprocess, sys, time
import torch

ckptfs, ceiling, tmp, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
store, mnt, cmnt = os.path.join(tmp, 'store'), os.path.join(tmp, 'mnt'), os.path.join(tmp, 'ceiling')
log = open(os.path.join(tmp, 'servers.log'), 'a')
can_drop = os.access('/proc/sys/vm/drop_caches', os.W_OK)


class Mount:
    """A FUSE server in the foreground, its mount ready once @probe exists under it."""

    def __init__(self, argv, point, probe):
        self.point = point
        self.proc = subprocess.Popen(argv + ['-f'], stderr=log)
        deadline = time.monotonic() + 10
        while not (os.path.ismount(point) and os.path.exists(os.path.join(point, probe))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit('bench_pt: %s did not mount (see %s)' % (argv[0], log.name))
            time.sleep(0.02)
        time.sleep(0.2)  # ckptfs raises the readahead 100 ms after INIT

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        subprocess.run(['fusermount3', '-u', self.point], check=True)
        self.proc.wait(timeout=10)


def ckptfs_mount():
    return Mount([ckptfs, store, mnt], mnt, 'epoch-0001/model.pt')


def drop_caches():
    os.sync()
    with open('/proc/sys/vm/drop_caches', 'w') as f:
        f.write('3\n')


def warm_up(path):
    with open(path, 'rb') as f:
        while f.read(1 << 20):
            pass


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def cat(path):
    return lambda: subprocess.run(['cat', path], stdout=subprocess.DEVNULL, check=True)


def load(path):
    return lambda: torch.load(path, weights_only=True)


mount_pt = os.path.join(mnt, 'epoch-0001', 'model.pt')
mount_st = os.path.join(mnt, 'epoch-0001', 'model.safetensors')
disk_pt = os.path.join(tmp, 'saved.pt')
disk_st = os.path.join(tmp, 'same-size.bin')
with ckptfs_mount():
    pt_size, st_size = os.path.getsize(mount_pt), os.path.getsize(mount_st)
    sd = torch.load(mount_pt, weights_only=True)
with open(disk_pt, 'wb') as f:  # the peer: what torch.save writes for the same tensors
    torch.save(sd, f)
    f.flush()
    os.fsync(f.fileno())
del sd
with open(disk_st, 'wb') as f:
    block = os.urandom(1 << 20)
    left = st_size
    while left:
        left -= f.write(block[:min(left, len(block))])
    os.fsync(f.fileno())

def load_average():
    with open('/proc/loadavg') as f:
        return f.read().split()[0]


load_at_start = load_average()
results = {}  # (file, state) -> {'mount': [...], 'peer': [...], 'ceiling': [...], 'cached': [...]}


def record(key, side, seconds):
    results.setdefault(key, {}).setdefault(side, []).append(seconds)


for _ in range(rounds):
    for name, mount_file, peer_file, op in (('model.safetensors', mount_st, disk_st, cat),
                                            ('model.pt', mount_pt, disk_pt, load)):
        if can_drop:
            with ckptfs_mount():
                drop_caches()
                record((name, 'cold'), 'mount', timed(op(mount_file)))
            drop_caches()
            record((name, 'cold'), 'peer', timed(op(peer_file)))
        warm_up(os.path.join(store, 'data.mdb'))
        with ckptfs_mount():
            record((name, 'ram'), 'mount', timed(op(mount_file)))
            warm_up(mount_file)  # the second open keeps the cache
            record((name, 'warm'), 'mount', timed(op(mount_file)))
        warm_up(peer_file)
        record((name, 'warm'), 'peer', timed(op(peer_file)))
        record((name, 'ram'), 'cached', results[(name, 'warm')]['peer'][-1])
        if name == 'model.safetensors':
            with Mount([ceiling, cmnt, str(st_size)], cmnt, 'data'):
                record((name, 'ram'), 'ceiling', timed(cat(os.path.join(cmnt, 'data'))))

mib = 1 << 20


def med(key, side):
    return statistics.median(results[key][side])


def spread(key, side):
    v = results[key][side]
    return '%.3f-%.3f' % (min(v), max(v))


print('bench_pt: %d CPUs (load average %s at the start, %s at the end), %d rounds, medians '
      '(min-max) in seconds; ratio = peer / mount' % (os.cpu_count(), load_at_start,
                                                    load_average(), rounds))
for name, size, what, peer in (('model.safetensors', st_size, 'cat', 'cat of a regular file'),
                               ('model.pt', pt_size, 'torch.load', 'torch.load of the torch.save file')):
    print('%s %.0f MiB, %s from the mount vs %s:' % (name, size / mib, what, peer))
    for state, label in (('cold', 'cold (caches dropped, fresh mount)'),
                         ('warm', 'warm (both in the page cache)')):
        key = (name, state)
        if key not in results:
            print('  %-36s skipped (dropping caches needs root)' % label)
            continue
        m, p = med(key, 'mount'), med(key, 'peer')
        print('  %-36s mount %.3f (%s)  peer %.3f (%s)  ratio %.2f (goal >= 0.9)'
              % (label, m, spread(key, 'mount'), p, spread(key, 'peer'), p / m))
    key = (name, 'ram')
    m, c = med(key, 'mount'), med(key, 'cached')
    line = '  %-36s mount %.3f (%s)' % ('first read, store in RAM', m, spread(key, 'mount'))
    if 'ceiling' in results[key]:
        e = med(key, 'ceiling')
        line += '  FUSE ceiling %.3f (%s): %.2f' % (e, spread(key, 'ceiling'), e / m)
    print(line + ';  peer in the page cache %.3f: %.2f' % (c, c / m))
PY
