#!/usr/bin/env bash
# scripts/deps.sh - install the Debian packages a target needs (build: make demo; test: make test).
# As root: runs `apt-get update` once and `apt-get install -y` for what is missing.
# As another user: prints the exact command and stops with exit status 1.
set -euo pipefail

build_pkgs=(gcc make pkg-config liblmdb-dev libfuse3-dev fuse3 libxxhash-dev libjansson-dev
	libopenblas-dev zlib1g-dev dataset-fashion-mnist)
test_pkgs=("${build_pkgs[@]}" check lmdb-utils python3 python3-numpy python3-torch rsync unzip tar
	coreutils procps)
extra_pkgs=(clang valgrind libclang-rt-dev)

case "${1:-test}" in
build) want=("${build_pkgs[@]}") ;;
test) want=("${test_pkgs[@]}") ;;
extra) want=("${test_pkgs[@]}" "${extra_pkgs[@]}") ;;
*)
	echo "deps.sh: error: unknown set '$1' (use build, test or extra)" >&2
	exit 2
	;;
esac

missing=()
for p in "${want[@]}"; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[[ "$status" == ii* ]] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get update && apt-get install -y ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: error: missing Debian packages: ${missing[*]}" >&2
	echo "deps.sh: run as root: $cmd" >&2
	exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q </dev/null
apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
