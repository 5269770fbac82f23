# tests/gpu/bundle_env.sh - sourced by tests/gpu/run.sh and tests/bench/bench_gpu.sh: use the
# programs of a GPU bundle (make gpu-bundle) instead of a build on this machine.
#
# gpu_bundle_use SPEC TMP: SPEC is build/gpu-bundle.tar.xz (unpacked under TMP) or an unpacked
# bundle directory. Checks the bundle is whole, that this machine's glibc is new enough and that
# every program and the plug-in find all their libraries (the bundle's own through their rpath
# $ORIGIN/../deps; cuBLAS from the CUDA toolkit: when the plug-in's rpath, /usr/local/cuda/lib64,
# does not have it, the libcublas.so.13 found elsewhere (ldconfig, /usr/local/cuda*, a pip wheel)
# is linked beside the plug-in, so nothing changes LD_LIBRARY_PATH for the Python clients).
# Exports CKPT_BIN_DIR (the bundle's bin/), GPU_BUNDLE (its directory) and, when the bundle
# carries Fashion-MNIST, GPU_DATA (its data/fashion-mnist, a --data DIR), and appends bin/ to
# PATH (fusermount3 when the machine has none). Prints one "bundle:" line, or one "FAIL:" line
# and returns 1.
gpu_bundle_use() {
	local spec=$1 tmp=$2 dir f miss need have cublas
	if [ -f "$spec" ]; then
		# without xz (tar -J needs it) Python's tarfile unpacks it
		mkdir -p "$tmp/bundle" && if command -v xz >/dev/null 2>&1; then
			tar -xJf "$spec" -C "$tmp/bundle"
		else
			"${PYTHON:-python3}" -c 'import sys, tarfile; kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}; tarfile.open(sys.argv[1]).extractall(sys.argv[2], **kw)' "$spec" "$tmp/bundle"
		fi || {
			echo "FAIL: cannot unpack the GPU bundle $spec"
			return 1
		}
		dir=$tmp/bundle/gpu-bundle
	elif [ -d "$spec" ]; then
		dir=$(cd "$spec" && pwd)
	else
		echo "FAIL: CKPT_GPU_BUNDLE=$spec is neither an archive nor a directory (make gpu-bundle writes build/gpu-bundle.tar.xz)"
		return 1
	fi
	for f in MANIFEST bin/ckpt bin/ckptfs bin/ckpt-train lib/ckpt-train-cuda.so; do
		[ -e "$dir/$f" ] || {
			echo "FAIL: the GPU bundle $spec has no $f (make gpu-bundle writes it)"
			return 1
		}
	done
	need=$(sed -n 's/^needs: GLIBC_\([0-9.]*\) .*/\1/p' "$dir/MANIFEST")
	have=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
	if [ -n "$need" ] && [ -n "$have" ] &&
		[ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1)" != "$need" ]; then
		echo "FAIL: the GPU bundle needs glibc $need or newer; this machine has $have (build the bundle on an older system)"
		return 1
	fi
	if ldd "$dir/lib/ckpt-train-cuda.so" 2>&1 | grep -q 'libcublas.*not found'; then
		cublas=$({
			ldconfig -p 2>/dev/null | awk '$1 == "libcublas.so.13" {print $NF}'
			ls /usr/local/cuda*/lib64/libcublas.so.13 /usr/local/cuda*/targets/*/lib/libcublas.so.13
			find /usr /opt -name libcublas.so.13
		} 2>/dev/null | while read -r f; do
			[ -e "$(dirname "$f")/libcublasLt.so.13" ] && echo "$f" && break
		done)
		if [ -z "$cublas" ]; then
			echo "FAIL: libcublas.so.13 and libcublasLt.so.13 not found on this machine (the CUDA 13 toolkit or the nvidia-cublas wheel has them)"
			return 1
		fi
		ln -sf "$cublas" "$(dirname "$cublas")/libcublasLt.so.13" "$dir/lib/" || return 1
	fi
	for f in "$dir"/bin/* "$dir"/lib/*.so; do
		miss=$(LD_LIBRARY_PATH="$dir/deps" ldd "$f" 2>&1 | grep 'not found' | tr -s ' \t\n' ' ')
		[ -z "$miss" ] || {
			echo "FAIL: $(basename "$f") from the GPU bundle lacks libraries here:$miss"
			return 1
		}
	done
	export CKPT_BIN_DIR=$dir/bin GPU_BUNDLE=$dir PATH=$PATH:$dir/bin
	if [ -f "$dir/data/fashion-mnist/train-images-idx3-ubyte.gz" ] &&
		[ -f "$dir/data/fashion-mnist/t10k-labels-idx1-ubyte.gz" ]; then
		export GPU_DATA=$dir/data/fashion-mnist
	fi
	echo "bundle: $(head -n 1 "$dir/MANIFEST"); plug-in code $(sed -n 's/^plug-in code: //p' "$dir/MANIFEST")$([ -n "${cublas:-}" ] && echo "; cuBLAS from $(dirname "$cublas")"); data: $([ -n "${GPU_DATA:-}" ] && echo "Fashion-MNIST (bundled)" || echo "none bundled")"
}
