#!/usr/bin/env bash
# tests/integration/test_mount_long_cwd.sh - a relative mountpoint or store under a current
# directory whose absolute path is longer than PATH_MAX (4096 bytes) cannot be handed to the
# kernel (and the daemon, which runs in "/", needs the store's absolute path): one line of
# ckptfs's naming it and why, exit 1 (not a usage error), nothing mounted. The mountpoint was
# libfuse's "fuse: bad mount point `m': File name too long", exit 2.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse

make_store "$TMP/store" 1
name=$(printf 'd%.0s' $(seq 200))
# one step at a time: no single path given to the kernel is longer than PATH_MAX
cd "$TMP" || fail "cd $TMP"
for _ in $(seq 23); do
	mkdir "$name" && cd "$name" || fail "cannot make the deep directory"
done
mkdir m && cp -r "$TMP/store" deep || fail "cannot fill the deep directory"
[ "${#PWD}" -gt 4400 ] || fail "the current directory's path is only ${#PWD} bytes"

# refused WANT ARGS...: exit 1, one line equal to WANT
refused() {
	local want=$1 out rc
	shift
	out=$("$BIN/ckptfs" "$@" 2>&1)
	rc=$?
	[ $rc -eq 0 ] && fail "ckptfs $*: mounted (exit 0)"
	[ $rc -eq 1 ] || fail "ckptfs $*: exit $rc, expected 1: $out"
	[ "$out" = "$want" ] || fail "ckptfs $*: said: $out"
	[ -z "$(ckptfs_mounts_under "$TMP")" ] || fail "ckptfs $*: something is mounted"
	return 0
}
too_long="the current directory's path is longer than 4096 bytes"
refused "ckptfs: error: mountpoint m: File name too long ($too_long, and the kernel needs the mountpoint's absolute path; give a shorter path)" \
	"$TMP/store" m
# the mountpoint is said first, whatever the store
refused "ckptfs: error: mountpoint m: File name too long ($too_long, and the kernel needs the mountpoint's absolute path; give a shorter path)" \
	deep m
mkdir -p "$TMP/mnt"
refused "ckptfs: error: cannot open store 'deep' (File name too long: $too_long, and ckptfs needs the store's absolute path; give a shorter path)" \
	deep "$TMP/mnt"
cd "$TMP" || fail "cd $TMP"
echo "test_mount_long_cwd: ok"
