#!/usr/bin/env bash
# tests/bench/bench_mount.sh - ckptfs throughput and latency against its peers, in one run
#
# 1. sequential read of a 1 GiB tensor file (.npy) through the mount, cold (first read after
#    mounting, store pages in RAM) and warm (keep_cache, best of 3), against: the FUSE ceiling
#    (a minimal low-level server serving the same size from memory: tests/bench/fuse_ceiling.c),
#    memcpy, the same bytes in a regular file on disk (O_DIRECT cold, page cache warm) and in
#    /dev/shm;
# 2. `ls -l` of a root with 10,000 checkpoints and `readlink best` in it;
# 3. `rsync -a` of a 100-epoch mount, first and second pass.
# Needs FUSE (skips otherwise) and about 3 GiB of disk and memory. The 10,000-checkpoint store
# is cached in build/bench/ between runs (writing it is slow).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=$ROOT/build/bin
TOOLS=$ROOT/build/tests/tools
BENCH=$ROOT/build/bench
mkdir -p "$BENCH"
if [ ! -c /dev/fuse ] || ! (exec 3<>/dev/fuse) 2>/dev/null; then
	echo "bench_mount: /dev/fuse unusable, skipped"
	exit 0
fi
make --no-print-directory -s build/tests/tools/mkstore build/tests/tools/mkstore_many >/dev/null || exit 1
cc -O2 -std=c11 -D_GNU_SOURCE $(pkg-config --cflags fuse3) -o "$BENCH/fuse_ceiling" \
	tests/bench/fuse_ceiling.c $(pkg-config --libs fuse3) || exit 1

TMP=$(mktemp -d "$BENCH/run.XXXXXX")
SHM=""
MOUNTS=()
PIDS=()
cleanup() {
	for m in "${MOUNTS[@]+"${MOUNTS[@]}"}"; do fusermount3 -u "$m" 2>/dev/null; done
	for p in "${PIDS[@]+"${PIDS[@]}"}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$TMP"
	[ -n "$SHM" ] && rm -rf "$SHM"
}
trap cleanup EXIT

mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; }
start() { # MNT CMD...: run a foreground FUSE server in the background, wait for its mount
	local mnt=$1
	shift
	mkdir -p "$mnt"
	"$@" 2>>"$TMP/server.log" &
	PIDS+=($!)
	MOUNTS+=("$mnt")
	for _ in $(seq 1 200); do
		mounted "$mnt" && return 0
		sleep 0.05
	done
	echo "bench_mount: $* did not mount: $(tail -n 3 "$TMP/server.log")" >&2
	exit 1
}
stop() { # MNT
	fusermount3 -u "$1"
	wait "${PIDS[-1]}" 2>/dev/null
	unset 'PIDS[-1]' 'MOUNTS[-1]'
}
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# read FILE [dd flags...] -> GB/s of a sequential read in 1 MiB requests
rate() {
	local f=$1
	shift
	local size t0 t1
	size=$(stat -c %s "$f")
	t0=$(now)
	dd if="$f" of=/dev/null bs=1M status=none "$@" || { echo "read of $f failed" >&2; exit 1; }
	t1=$(now)
	awk -v s="$size" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", s / (b - a) / 1e9 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f%%", 100 * a / b }'; }
best_of() { # N FILE -> the best GB/s of N reads (warm: the page cache serves them all)
	local best=0 r
	for _ in $(seq "$1"); do
		r=$(rate "$2")
		best=$(awk -v a="$r" -v b="$best" 'BEGIN { print (a > b) ? a : b }')
	done
	echo "$best"
}

echo "bench_mount: $(nproc) CPUs, $(uname -r), libfuse $(pkg-config --modversion fuse3)"

# ---- 1. one 1 GiB tensor
store=$TMP/big
t0=$(now)
"$TOOLS/mkstore" "$store" --epochs 1 --layers 8,4 --big-mib 1024 --no-sync >"$TMP/mkstore.log" 2>&1 ||
	{ echo "mkstore: $(cat "$TMP/mkstore.log")" >&2; exit 1; }
echo "  wrote a 1 GiB-tensor store in $(secs "$t0" "$(now)") s"
cat "$store/data.mdb" >/dev/null # the store in RAM: measure the FUSE path, not the disk
mnt=$TMP/mnt
start "$mnt" "$BIN/ckptfs" "$store" "$mnt" -f
file=$mnt/epoch-0001/model/big.weight.npy
size=$(stat -c %s "$file")
ck_cold=$(rate "$file")
ck_warm=$(best_of 3 "$file")
stop "$mnt"

cmnt=$TMP/ceiling
start "$cmnt" "$BENCH/fuse_ceiling" "$cmnt" "$size" -f
ce_cold=$(rate "$cmnt/data")
ce_warm=$(best_of 3 "$cmnt/data")
stop "$cmnt"

memcpy=$("$BENCH/fuse_ceiling" --memcpy "$size")
disk=$TMP/disk.npy
"$BIN/ckpt" cat "$store" epoch-0001/model/big.weight.npy >"$disk" || exit 1
sync "$disk"
disk_cold=$(rate "$disk" iflag=direct)
rate "$disk" >/dev/null
disk_warm=$(best_of 3 "$disk")
SHM=$(mktemp -d /dev/shm/bench_mount.XXXXXX)
cp "$disk" "$SHM/f"
shm=$(rate "$SHM/f")
rm -rf "$SHM" "$disk"
SHM=""

echo "  sequential read of a $((size >> 20)) MiB .npy (GB/s):"
printf '    %-42s %6s\n' "ckptfs cold (first read, store in RAM)" "$ck_cold" \
	"ckptfs warm (keep_cache)" "$ck_warm" "FUSE ceiling cold (memory server)" "$ce_cold" \
	"FUSE ceiling warm" "$ce_warm" "memcpy" "$memcpy" "disk file, O_DIRECT" "$disk_cold" \
	"disk file, page cache" "$disk_warm" "/dev/shm file" "$shm"
echo "  ratios: cold/ceiling $(ratio "$ck_cold" "$ce_cold") (goal >= 90%)," \
	"warm/page-cache $(ratio "$ck_warm" "$disk_warm") (goal >= 90%)," \
	"cold/memcpy $(ratio "$ck_cold" "$memcpy"), cold/disk $(ratio "$ck_cold" "$disk_cold")"
# A warm read never reaches the daemon: the kernel serves it from the FUSE file's page cache,
# which holds 4 KiB folios where ext4 uses large ones, so any FUSE server's warm read is the
# limit for ckptfs's.
echo "  warm/FUSE ceiling warm $(ratio "$ck_warm" "$ce_warm")" \
	"(the kernel's page cache of a FUSE file; ceiling warm/page-cache $(ratio "$ce_warm" "$disk_warm"))"
rm -rf "$store"

# ---- 2. 10,000 checkpoints
many=$BENCH/store-10000-v2
if [ ! -e "$many/data.mdb" ] || ! "$BIN/ckpt" info "$many" 2>/dev/null | grep -q '^checkpoints: 10000$'; then
	rm -rf "$many"
	t0=$(now)
	"$TOOLS/mkstore_many" "$many" --epochs 10000 >"$TMP/many.log" 2>&1 ||
		{ echo "mkstore_many: $(cat "$TMP/many.log")" >&2; exit 1; }
	echo "  wrote a 10,000-checkpoint store in $(secs "$t0" "$(now)") s (cached in build/bench)"
fi
mnt=$TMP/mnt-10000
start "$mnt" "$BIN/ckptfs" "$many" "$mnt" -f
t0=$(now)
n=$(ls -l "$mnt" | grep -c '^d.* epoch-[0-9]*$')
first=$(secs "$t0" "$(now)")
sleep 1 # past the live timeouts: a fresh listing like a user's next ls
best_ls=""
for _ in 1 2 3; do
	t0=$(now)
	ls -l "$mnt" >/dev/null
	t=$(secs "$t0" "$(now)")
	[ -z "$best_ls" ] || [ "$(awk -v a="$t" -v b="$best_ls" 'BEGIN { print (a < b) }')" = 1 ] && best_ls=$t
done
t0=$(now)
best=$(readlink "$mnt/best")
rl=$(secs "$t0" "$(now)")
t0=$(now)
"$BIN/ckpt" ls -l "$many" >/dev/null
cli=$(secs "$t0" "$(now)")
stop "$mnt"
echo "  ls -l of a root with $n checkpoints: first ${first} s, then ${best_ls} s (goal < 0.2 s);" \
	"readlink best (${best}) ${rl} s; ckpt ls -l ${cli} s"

# ---- 3. rsync of 100 epochs
hundred=$TMP/store-100
"$TOOLS/mkstore_many" "$hundred" --epochs 100 --params 16 >"$TMP/h.log" 2>&1 ||
	{ echo "mkstore_many: $(cat "$TMP/h.log")" >&2; exit 1; }
mnt=$TMP/mnt-100
start "$mnt" "$BIN/ckptfs" "$hundred" "$mnt" -f
t0=$(now)
rsync -a "$mnt/" "$TMP/backup/" 2>"$TMP/rsync.err" || { echo "rsync: $(tail -n 3 "$TMP/rsync.err")" >&2; exit 1; }
r1=$(secs "$t0" "$(now)")
t0=$(now)
changes=$(rsync -a --itemize-changes "$mnt/" "$TMP/backup/" | wc -l)
r2=$(secs "$t0" "$(now)")
files=$(find "$TMP/backup" -type f | wc -l)
bytes=$(du -sb "$TMP/backup" | cut -f1)
stop "$mnt"
echo "  rsync -a of 100 epochs ($files files, $((bytes >> 20)) MiB): first pass ${r1} s," \
	"second pass ${r2} s ($changes changes)"
