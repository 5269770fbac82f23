#!/usr/bin/env bash
# tests/integration/test_pt_export.sh - `ckpt export` of model.pt, checkpoint.pt and
# model.safetensors, checked with the real loaders (torch 1.13, numpy, unzip,
# tests/integration/safetensors_check.py, and the reference safetensors-check where there is one)
# against the view's .npy files of the same epoch.
# Covers every dtype, 0-dim and empty tensors, hostile names, BatchNorm buffers, GPU-recorded stores
# (cpu by default, keep / cuda:N fail as PyTorch does on a CPU-only machine), SGD and Adam
# optimizer state, and the bad-input paths (nothing half-written). Exit 0 pass, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$ROOT
ckpt=$CKPT
mkstore=${MKSTORE_BIN:-$TOOLS/mkstore}
need_built "$ckpt" "$mkstore"
need_torch
py=$PY
command -v unzip >/dev/null || skip "unzip missing"
check=(
	"$py" "$root/tests/integration/pt_check.py")
tmp=$WORK

# cat every model/*.npy of an epoch into a directory
npy_dir() { # STORE EPOCHDIR OUT
	mkdir -p "$3"
	"$ckpt" ls "$1" "$2/model" >"$3.list"
	while IFS= read -r f; do
		case $f in *.npy) "$ckpt" cat "$1" "$2/model/$f" >"$3/$f" ;; esac
	done <"$3.list"
	[ -n "$(ls "$3")" ] || fail "no .npy files in $2/model"
}

# --- every dtype, Adam, small chunks so payloads cross chunk boundaries -------------------
A=$tmp/adam
"$mkstore" "$A" --epochs 2 --layers 8,16,4 --optimizer adam --dtypes --chunk-size 96 \
	--no-sync >/dev/null
args=()
for e in 1 2; do
	d=$tmp/a$e
	mkdir -p "$d"
	dir=$(printf 'epoch-%04d' $e)
	"$ckpt" export "$A" $e --format pt -o "$d/model.pt"
	"$ckpt" export "$A" "$dir" --format checkpoint -o "$d/checkpoint.pt"
	"$ckpt" export "$A" $e --format safetensors -o "$d/model.safetensors"
	for f in model.pt checkpoint.pt model.safetensors; do
		"$ckpt" cat "$A" "$dir/$f" | cmp -s - "$d/$f" || fail "$dir/$f: export and view differ"
	done
	unzip -tq "$d/model.pt" >/dev/null || fail "unzip -t $d/model.pt"
	unzip -tq "$d/checkpoint.pt" >/dev/null || fail "unzip -t $d/checkpoint.pt"
	safetensors_check "$d/model.safetensors" --dump "$d/dump" >"$d/st.txt" ||
		fail "safetensors-check rejects epoch $e"
	grep -q "\"format\": \"pt\", \"epoch\": \"$e\", \"val_loss\": \"" "$d/st.txt" ||
		fail "safetensors metadata: $(head -n 1 "$d/st.txt")"
	npy_dir "$A" "$dir" "$d/npy"
	args+=(state-vs-npy "$d/model.pt" "$d/npy" ";" dump-vs-npy "$d/dump" "$d/npy" ";"
		checkpoint "$d/checkpoint.pt" adam ";" devices "$d/model.pt" cpu ";")
done
# latest and best resolve; the file is the same as by number
"$ckpt" export "$A" latest --format pt -o "$tmp/latest.pt"
cmp -s "$tmp/latest.pt" "$tmp/a2/model.pt" || fail "export latest != export 2"
"$ckpt" export "$A" best --format pt -o - >"$tmp/best.pt"
[ -s "$tmp/best.pt" ] || fail "export -o - wrote nothing"

# --- a store recorded on cuda:0, SGD, hostile names ----------------------------------------
G=$tmp/gpu
"$mkstore" "$G" --epochs 1 --layers 8,16,4 --device cuda:0 --hostile-names --no-sync >/dev/null
"$ckpt" export "$G" 1 --format pt -o "$tmp/g.pt"
"$ckpt" export "$G" 1 --format checkpoint -o "$tmp/gck.pt"
"$ckpt" export "$G" 1 --format pt --map-location keep -o "$tmp/gkeep.pt"
"$ckpt" export "$G" 1 --format checkpoint --map-location cuda:1 -o "$tmp/gck1.pt"
"$ckpt" export "$G" 1 --format safetensors -o "$tmp/g.safetensors"
safetensors_check "$tmp/g.safetensors" >/dev/null || fail "safetensors-check rejects hostile names"
for f in g.pt gck.pt gkeep.pt gck1.pt; do
	unzip -tq "$tmp/$f" >/dev/null || fail "unzip -t $f"
done
"$ckpt" show "$G" 1 | grep -q 'cuda:0' || fail "ckpt show lost the recorded device"
npy_dir "$G" epoch-0001 "$tmp/gnpy"
args+=(devices "$tmp/g.pt" cpu ";" devices "$tmp/gck.pt" cpu ";"
	state-vs-npy "$tmp/g.pt" "$tmp/gnpy" ";" checkpoint "$tmp/gck.pt" sgd ";"
	cuda-error "$tmp/gkeep.pt" ";" cuda-error "$tmp/gck1.pt")
# --- BatchNorm layers: model buffers (running statistics) between the parameters have no
# optimizer state; the optimizer numbers only the parameters, as torch's state_dict() does --
for opt in sgd adam sgd-nogroups; do
	more=()
	[ $opt = sgd-nogroups ] && more=(--no-param-groups) # the default group skips the buffers
	B=$tmp/bn-$opt
	"$mkstore" "$B" --epochs 1 --layers 8,16,12,4 --optimizer ${opt%-nogroups} --batchnorm \
		"${more[@]}" --no-sync >/dev/null
	"$ckpt" export "$B" 1 --format checkpoint -o "$tmp/bn-$opt.pt"
	"$ckpt" cat "$B" epoch-0001/checkpoint.pt | cmp -s - "$tmp/bn-$opt.pt" ||
		fail "BatchNorm $opt: export and view differ"
	mkdir -p "$tmp/bn-$opt-npy"
	"$ckpt" ls "$B" epoch-0001/optimizer >"$tmp/bn-$opt.list"
	while IFS= read -r f; do
		case $f in *.npy) "$ckpt" cat "$B" "epoch-0001/optimizer/$f" >"$tmp/bn-$opt-npy/$f" ;; esac
	done <"$tmp/bn-$opt.list"
	args+=(";" batchnorm "$tmp/bn-$opt.pt" ${opt%-nogroups} 8,16,12,4 "$tmp/bn-$opt-npy")
done
# --- no param groups stored (a store written through libckpt): checkpoint.pt's group has every
# key torch's step() reads, from the run's hyper-parameters and torch's defaults
for opt in sgd adam; do
	N=$tmp/npg-$opt
	"$mkstore" "$N" --epochs 1 --optimizer $opt --no-param-groups --no-sync >/dev/null
	"$ckpt" export "$N" 1 --format checkpoint -o "$tmp/npg-$opt.pt"
	args+=(";" steps "$tmp/npg-$opt.pt" $opt ";" steps "$tmp/a2/checkpoint.pt" adam)
done
"${check[@]}" "${args[@]}"

# --- bad input: one line on stderr, non-zero exit, nothing half-written ----------------------
expect_fail() { # STATUS PATTERN CMD...
	local want=$1 pattern=$2
	shift 2
	local rc=0
	"$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
	[ "$rc" -eq "$want" ] || fail "$* exited $rc, expected $want: $(cat "$tmp/err")"
	grep -q "$pattern" "$tmp/err" || fail "$*: message '$(cat "$tmp/err")' lacks '$pattern'"
	# one line in all: no usage text after the error
	[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q '^ckpt: error: ' "$tmp/err" ||
		fail "$*: not one error line: $(cat "$tmp/err")"
}
mkdir "$tmp/out_dir"
echo old >"$tmp/out_dir/keep.pt"
expect_fail 2 "map-location" "$ckpt" export "$A" 1 --format pt --map-location gpu \
	-o "$tmp/out_dir/keep.pt"
expect_fail 2 "format" "$ckpt" export "$A" 1 --format onnx -o "$tmp/out_dir/keep.pt"
expect_fail 2 "format" "$ckpt" export "$A" 1 -o "$tmp/out_dir/keep.pt"
expect_fail 1 "99" "$ckpt" export "$A" 99 --format pt -o "$tmp/out_dir/keep.pt"
expect_fail 2 "bad epoch '-1'" "$ckpt" export "$A" -1 --format pt -o "$tmp/out_dir/keep.pt"
expect_fail 2 "unknown option '--bogus'" "$ckpt" export "$A" 1 --bogus --format pt \
	-o "$tmp/out_dir/keep.pt"
cp -a "$A/data.mdb" "$tmp/data.before"
expect_fail 1 "destroy the store" "$ckpt" export "$A" 1 --format pt -o "$A/data.mdb"
cmp -s "$A/data.mdb" "$tmp/data.before" || fail "export -o STORE/data.mdb changed the store"
# the store's files named only once it is open: /proc/self/fd/N and /dev/fd/N, and
# /dev/stdout or /dev/stderr with that stream closed (the store must not open as fd 1 or 2)
refused=0
for n in 3 4 5 6; do
	for o in /proc/self/fd/$n /dev/fd/$n; do
		"$ckpt" export "$A" 1 --format pt -o $o >/dev/null 2>"$tmp/err" ||
			{ grep -q "is a file of the store .*destroy the store" "$tmp/err" && refused=$((refused + 1)); }
		cmp -s "$A/data.mdb" "$tmp/data.before" || fail "export -o $o changed the store: $(cat "$tmp/err")"
	done
done
[ $refused -ge 2 ] || fail "export -o /proc/self/fd/N: the store's own file was never refused"
"$ckpt" export "$A" 1 --format pt -o /dev/stdout >&- 2>"$tmp/err" &&
	fail "export -o /dev/stdout with stdout closed: exit 0 (the export went to /dev/null)"
grep -q "writing '/dev/stdout' failed (Bad file descriptor)" "$tmp/err" ||
	fail "export -o /dev/stdout >&-: $(cat "$tmp/err")"
cmp -s "$A/data.mdb" "$tmp/data.before" || fail "export -o /dev/stdout >&- changed the store"
"$ckpt" export "$A" 1 --format pt -o - >>"$A/data.mdb" 2>"$tmp/err" &&
	fail "export -o - >> STORE/data.mdb: exit 0"
grep -q "'stdout' is a file of the store" "$tmp/err" || fail "export -o - >> data.mdb: $(cat "$tmp/err")"
"$ckpt" cat "$A" epoch-0001/model.pt >>"$A/data.mdb" 2>"$tmp/err" && fail "cat >> STORE/data.mdb: exit 0"
grep -q "cat: 'stdout' is a file of the store" "$tmp/err" || fail "cat >> data.mdb: $(cat "$tmp/err")"
cmp -s "$A/data.mdb" "$tmp/data.before" || fail "export -o - >> STORE/data.mdb changed the store"
"$ckpt" export "$A" 1 --format pt -o /dev/stderr 2>&- >/dev/null &&
	fail "export -o /dev/stderr with stderr closed: exit 0"
cmp -s "$A/data.mdb" "$tmp/data.before" || fail "export -o /dev/stderr 2>&- changed the store"
expect_fail 2 "needs a value" "$ckpt" export "$A" 1 -o "$tmp/out_dir/keep.pt" --format
expect_fail 1 "nostore" "$ckpt" export "$tmp/nostore" 1 --format pt -o "$tmp/out_dir/keep.pt"
expect_fail 1 "missing_dir" "$ckpt" export "$A" 1 --format pt -o "$tmp/missing_dir/x.pt"
[ "$(cat "$tmp/out_dir/keep.pt")" = old ] || fail "a failed export changed the target file"
[ "$(ls -A "$tmp/out_dir")" = keep.pt ] || fail "a failed export left files: $(ls -A "$tmp/out_dir")"
if [ "$(id -u)" -ne 0 ]; then
	chmod 0555 "$tmp/out_dir"
	expect_fail 1 "out_dir" "$ckpt" export "$A" 1 --format pt -o "$tmp/out_dir/new.pt"
	chmod 0755 "$tmp/out_dir"
fi

# --- -o names something that is not a plain file: write into it as cp does ------------------
# a FIFO (like /dev/null or a pipe) is written into, not renamed over
fifo=$tmp/fifo
mkfifo "$fifo"
cat "$fifo" >"$tmp/fifo.out" &
reader=$!
rc=0
timeout 60 "$ckpt" export "$A" 1 --format pt -o "$fifo" 2>"$tmp/err" || rc=$?
if [ ! -p "$fifo" ]; then
	kill "$reader" 2>/dev/null || true
	wait "$reader" 2>/dev/null || true
	fail "export -o FIFO replaced the FIFO with a file"
fi
wait "$reader" || fail "reader of the FIFO failed"
[ "$rc" -eq 0 ] || fail "export -o FIFO exited $rc: $(cat "$tmp/err")"
cmp -s "$tmp/fifo.out" "$tmp/a1/model.pt" || fail "export -o FIFO: bytes differ from model.pt"
# a symlink keeps pointing at its target, which gets the new bytes
echo old >"$tmp/target.pt"
ln -s target.pt "$tmp/link.pt"
"$ckpt" export "$A" 1 --format pt -o "$tmp/link.pt"
[ -L "$tmp/link.pt" ] || fail "export -o SYMLINK replaced the symlink"
cmp -s "$tmp/target.pt" "$tmp/a1/model.pt" || fail "export -o SYMLINK: target not written"
# a dangling symlink (through a second link, relative) gets its target created, as cp does
mkdir -p "$tmp/sub"
ln -s sub/hop.pt "$tmp/dangling.pt"
ln -s new.pt "$tmp/sub/hop.pt"
"$ckpt" export "$A" 1 --format pt -o "$tmp/dangling.pt" 2>"$tmp/err" ||
	fail "export -o DANGLING-SYMLINK: $(cat "$tmp/err")"
[ -L "$tmp/dangling.pt" ] && [ -L "$tmp/sub/hop.pt" ] || fail "export replaced a dangling symlink"
cmp -s "$tmp/sub/new.pt" "$tmp/a1/model.pt" || fail "export -o DANGLING-SYMLINK: target not written"
ln -s loop2.pt "$tmp/loop1.pt"
ln -s loop1.pt "$tmp/loop2.pt"
expect_fail 1 "symlink" "$ckpt" export "$A" 1 --format pt -o "$tmp/loop1.pt"
expect_fail 1 "directory" "$ckpt" export "$A" 1 --format pt -o "$tmp/out_dir"

# a file being replaced keeps its permission bits (a private 0600 model stays private)
echo old >"$tmp/private.pt"
chmod 0600 "$tmp/private.pt"
"$ckpt" export "$A" 1 --format pt -o "$tmp/private.pt"
[ "$(stat -c %a "$tmp/private.pt")" = 600 ] ||
	fail "export over a 0600 file left mode $(stat -c %a "$tmp/private.pt")"
cmp -s "$tmp/private.pt" "$tmp/a1/model.pt" || fail "export over a 0600 file: bytes differ"

# --- an export that cannot finish leaves nothing behind ---------------------------------------
# past the file size limit: one error line (EFBIG), not SIGXFSZ with the temporary file left
[ "$(stat -c %s "$tmp/a1/model.pt")" -gt 4096 ] || fail "model.pt too small for the ulimit test"
mkdir "$tmp/lim"
expect_fail 1 "too large" bash -c 'ulimit -f 4; exec "$@"' sh \
	"$ckpt" export "$A" 1 --format pt -o "$tmp/lim/model.pt"
[ -z "$(ls -A "$tmp/lim")" ] || fail "export past ulimit -f left: $(ls -A "$tmp/lim")"
# SIGTERM while the temporary file is being written: it is removed, the exit is the signal's
B=$tmp/big
"$mkstore" "$B" --epochs 1 --layers 8,4 --big-mib 192 --no-sync >/dev/null
mkdir "$tmp/sig"
caught=0
for _ in 1 2 3 4 5; do
	"$ckpt" export "$B" 1 --format pt -o "$tmp/sig/model.pt" &
	exporter=$!
	for _ in $(seq 2000); do
		compgen -G "$tmp/sig/.model.pt.tmp.*" >/dev/null && break
		kill -0 "$exporter" 2>/dev/null || break
	done
	if compgen -G "$tmp/sig/.model.pt.tmp.*" >/dev/null; then
		kill -TERM "$exporter" 2>/dev/null || true
		rc=0
		wait "$exporter" || rc=$?
		if [ "$rc" -eq 143 ]; then
			caught=1
			[ -z "$(ls -A "$tmp/sig")" ] ||
				fail "SIGTERM during export left: $(ls -A "$tmp/sig")"
			break
		fi
	else
		wait "$exporter" || fail "export of the big store failed"
	fi
	rm -f "$tmp/sig/model.pt"
done
[ "$caught" -eq 1 ] || echo "note: export finished before SIGTERM could land, 5 times"
rm -rf "$B"
echo "export: every dtype, hostile names, cuda:0 remapping and bad input checked"
