#!/usr/bin/env bash
# tests/gpu/bundle.sh - one archive, build/gpu-bundle.tar.xz, with everything the GPU checks need
# on a GPU machine that has the NVIDIA driver, the CUDA toolkit (cuBLAS) and python3 with torch,
# but none of the Debian libraries ckptfs builds against. Run through `make gpu-bundle` (which
# passes PKGS and MODULE_SRC). It
#   1. builds with CUDA=1 into build/gpu-bundle-build, the programs linked with an rpath of
#      $ORIGIN/../deps (DT_RPATH, so it also serves the libraries' own dependencies)
#   2. builds check_train_cuda without sanitizers (the ASan build and the CUDA driver disagree)
#   3. gathers bin/{ckpt,ckptfs,ckpt-train,check_train_cuda,fusermount3},
#      lib/{ckpt-train-cuda.so,libckpt.so} and deps/: every shared library they load (ldd) except
#      glibc's, libstdc++/libgcc_s (any machine with python3 and torch has them) and CUDA's
#      (the machine's toolkit and driver provide them: the plug-in looks in $ORIGIN, then
#      /usr/local/cuda/lib64; tests/gpu/bundle_env.sh links them beside it when they are elsewhere)
#   4. checks the plug-in carries sm_90 code (H100, H200) and compute_90 PTX, that every program
#      resolves every library it needs from the bundle (with the system's copies hidden, when
#      this runs as root and can unshare a mount namespace) and runs
#   5. writes MANIFEST (commit, build machine, the newest glibc symbol version needed, files)
# It also carries Fashion-MNIST (data/fashion-mnist/*.gz, 30 MB, from train/data.h's
# TRAIN_FASHION_MNIST_DIR), so the GPU checks and the benchmark train ckpt-train and PyTorch on
# the same real data on a machine that has none; without it here the bundle has no data/ and
# they fall back to the synthetic set (a note says so).
# Environment: BUNDLE_MAX_MIB (default 48): fail if the archive is bigger.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
: "${PKGS:?run through make gpu-bundle (PKGS is not set)}"
: "${MODULE_SRC:?run through make gpu-bundle (MODULE_SRC is not set)}"
B=build/gpu-bundle-build
STAGE=build/gpu-bundle
ARCHIVE=build/gpu-bundle.tar.xz
MAX_MIB=${BUNDLE_MAX_MIB:-48}
FASHION=/usr/share/datasets/fashion-mnist
FASHION_FILES="train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz"
die() {
	echo "gpu-bundle: $*" >&2
	exit 1
}
# libraries the GPU machine brings: glibc, the C++ runtime, CUDA's
system_lib() {
	case "$1" in
	linux-vdso.so.* | ld-linux*.so.* | libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | \
		librt.so.* | libresolv.so.* | libutil.so.* | libstdc++.so.* | libgcc_s.so.* | \
		libcuda.so.* | libcudart.so.* | libcublas.so.* | libcublasLt.so.*)
		return 0
		;;
	esac
	return 1
}

# ---- 1, 2. build ------------------------------------------------------------------------------
rpath="-Wl,--disable-new-dtags,-rpath,'\$\$ORIGIN/../deps'"
make -s --no-print-directory -j"$(nproc)" BUILD="$B" CUDA=1 LDFLAGS="$rpath" all ||
	die "make CUDA=1 failed"
mkdir -p "$B/tests"
objs=()
for src in $MODULE_SRC; do
	objs+=("$B/obj/${src%.c}.o")
done
# shellcheck disable=SC2046 # pkg-config prints words to split
cc -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Iinclude -I. -Itests/unit -O2 -g \
	-Wall -Wextra -Wshadow -Wno-unused-parameter -Werror $(pkg-config --cflags $PKGS check) \
	-o "$B/tests/check_train_cuda" tests/unit/check_train_cuda.c tests/unit/test_dir.c "${objs[@]}" \
	$(pkg-config --libs check $PKGS) -lpthread -lm -Wl,--disable-new-dtags,-rpath,'$ORIGIN/../deps' ||
	die "cannot build check_train_cuda without sanitizers"

# ---- 3. gather --------------------------------------------------------------------------------
fusermount=$(command -v fusermount3) || die "fusermount3 not found (apt-get install fuse3)"
rm -rf "$STAGE" "$ARCHIVE"
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/deps"
cp "$B/bin/ckpt" "$B/bin/ckptfs" "$B/bin/ckpt-train" "$B/tests/check_train_cuda" "$STAGE/bin/"
cp "$fusermount" "$STAGE/bin/fusermount3" # without its setuid bit: the GPU machine runs as root
chmod 0755 "$STAGE/bin/fusermount3"
cp "$B/lib/ckpt-train-cuda.so" "$B/lib/libckpt.so" "$STAGE/lib/"
elves=("$STAGE"/bin/* "$STAGE"/lib/*)
for f in "${elves[@]}"; do
	deps=$(ldd "$f") || die "ldd $f failed"
	if grep -q 'not found' <<<"$deps"; then
		die "$f: $(grep 'not found' <<<"$deps" | head -n 1 | sed 's/^[[:space:]]*//')"
	fi
	while read -r name _ path _; do
		system_lib "$name" && continue
		[ -e "$STAGE/deps/$name" ] || cp "$(readlink -f "$path")" "$STAGE/deps/$name"
	done < <(awk '$2 == "=>" && $3 ~ /^\// {print $1, $2, $3}' <<<"$deps")
done
chmod 0644 "$STAGE"/deps/*
have_data=1
for f in $FASHION_FILES; do
	[ -f "$FASHION/$f" ] || have_data=0
done
if [ $have_data = 1 ]; then
	mkdir -p "$STAGE/data/fashion-mnist"
	for f in $FASHION_FILES; do
		cp "$FASHION/$f" "$STAGE/data/fashion-mnist/"
	done
	chmod 0644 "$STAGE"/data/fashion-mnist/*
else
	echo "gpu-bundle: note: no Fashion-MNIST in $FASHION: the bundle carries no data; the GPU checks and the benchmark use the synthetic set" >&2
fi

# ---- 4. checks --------------------------------------------------------------------------------
# the plug-in's fat binary: Hopper machine code and PTX for later GPUs (parsed from .nv_fatbin:
# entry kind 1 = PTX, 2 = ELF, architecture at byte 28 of each entry's header)
objcopy -O binary --only-section=.nv_fatbin "$STAGE/lib/ckpt-train-cuda.so" "$B/fatbin" ||
	die "the plug-in has no .nv_fatbin section"
archs=$(python3 - "$B/fatbin" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
off, seen = 0, set()
while off + 16 <= len(d):
    magic, _, hsz, size = struct.unpack_from("<IHHQ", d, off)
    if magic != 0xBA55ED50:
        break
    e, end = off + hsz, off + hsz + size
    while e + 32 <= end:
        kind, _, ehs, esize = struct.unpack_from("<HHIQ", d, e)
        arch, = struct.unpack_from("<I", d, e + 28)
        seen.add(("sm_%d" if kind == 2 else "compute_%d") % arch)
        e += ehs + esize
    off = end
print(" ".join(sorted(seen)))
PY
) || die "cannot read the plug-in's fat binary"
for want in sm_90 compute_90; do
	grep -qw "$want" <<<"$archs" || die "the plug-in lacks $want code (has: $archs); see NVCC_ARCH"
done
# every program finds each library it needs inside the bundle: by ldd, then, as root, by running
# them in a mount namespace where the system's copies of those libraries are /dev/null
for f in "${elves[@]}"; do
	while read -r name _ path _; do
		system_lib "$name" && continue
		case "$(readlink -f "$path")" in
		"$ROOT/$STAGE"/*) ;;
		*) die "$f: $name resolves to $path, not into the bundle" ;;
		esac
	done < <(LD_LIBRARY_PATH="$ROOT/$STAGE/deps" ldd "$f" | awk '$2 == "=>" {print $1, $2, $3}')
done
hidden=0
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null; then
	hide=""
	for lib in "$STAGE"/deps/*; do
		for sys in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu \
			/usr/lib/x86_64-linux-gnu/openblas-pthread; do
			[ -e "$sys/$(basename "$lib")" ] && hide+=" $(readlink -f "$sys/$(basename "$lib")")"
		done
	done
	unshare -m bash -euc '
		for f in $1; do mount --bind /dev/null "$f"; done
		s=$2
		"$s/bin/ckpt" --help >/dev/null
		"$s/bin/ckptfs" --version >/dev/null
		"$s/bin/ckpt-train" --version >/dev/null
		t=$(mktemp -d)
		trap "rm -rf $t" EXIT
		"$s/bin/ckpt-train" --store "$t/s" --data synthetic --layers 784,8,10 --epochs 1 \
			--quiet --no-sync
		"$s/bin/ckpt" verify "$t/s" >/dev/null
		(cd "$t" && CKPT_TRAIN_CUDA_PLUGIN="$s/lib/ckpt-train-cuda.so" "$s/bin/check_train_cuda" \
			>"$t/check.log" 2>&1) || { cat "$t/check.log"; exit 1; }
		grep -q "Failures: 0, Errors: 0" "$t/check.log"
		"$s/bin/fusermount3" -V >/dev/null
	' _ "$hide" "$ROOT/$STAGE" || die "the bundle's programs do not run with the system's copies of its libraries hidden"
	hidden=$(wc -w <<<"$hide")
fi

# ---- 5. manifest, archive ---------------------------------------------------------------------
glibc=$(for f in "${elves[@]}" "$STAGE"/deps/*; do objdump -T "$f"; done |
	grep -o 'GLIBC_[0-9][0-9.]*' | sort -uV | tail -n 1)
{
	echo "ckptfs GPU bundle $(git describe --always --dirty 2>/dev/null || echo unknown) built $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "built on: $(. /etc/os-release && echo "$PRETTY_NAME"), $(ldd --version | head -n 1), $(/usr/local/cuda/bin/nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo "nvcc $(command -v nvcc)")"
	echo "needs: $glibc or newer, libstdc++, libcublas.so.13 + libcublasLt.so.13, NVIDIA driver for CUDA 13"
	echo "plug-in code: $archs"
	echo "checked: every library resolves into the bundle$([ "$hidden" != 0 ] && echo "; ran with the system's $hidden copies hidden")"
	echo "data: $([ $have_data = 1 ] && echo "Fashion-MNIST in data/fashion-mnist" || echo "none (synthetic)")"
	(cd "$STAGE" && find bin lib deps data -type f 2>/dev/null | sort | xargs sha256sum)
} >"$STAGE/MANIFEST"
tar -C build -cf - gpu-bundle | xz -9 -T0 >"$ARCHIVE" || die "cannot write $ARCHIVE"
size=$(stat -c %s "$ARCHIVE")
[ "$size" -le $((MAX_MIB * 1048576)) ] ||
	die "$ARCHIVE is $((size / 1048576)) MiB, over the $MAX_MIB MiB limit"
echo "$ARCHIVE: $(awk -v s="$size" 'BEGIN { printf "%.1f MiB", s / 1048576 }'), $(find "$STAGE" -type f | wc -l) files ($(du -sh "$STAGE" | cut -f1) unpacked); plug-in code $archs; needs $glibc"
