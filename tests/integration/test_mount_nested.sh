#!/usr/bin/env bash
# tests/integration/test_mount_nested.sh - a mountpoint inside a ckptfs mount (an epoch's
# directory) is refused in one line, exit 1, nothing mounted. It was mounted there, and then
# fusermount3 -u of the outer mount failed with "Device or resource busy".
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse

make_store "$TMP/store" 2
outer="$TMP/outer dir" # a space: mountinfo writes it as \040
mount_store "$TMP/store" "$outer"
[ -d "$outer/epoch-0001/model" ] || fail "the mount shows no epoch-0001/model"

# refused MOUNTPOINT (run in $outer): one line naming the outer mount, exit 1, nothing stacked
refused() {
	local out rc
	out=$(cd "$outer" && "$BIN/ckptfs" "$TMP/store" "$1" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		fusermount3 -u "$outer/$1" 2>/dev/null
		fail "ckptfs mounted on $1 inside the ckptfs mount $outer"
	fi
	[ $rc -eq 1 ] || fail "a mountpoint $1 inside the mount: exit $rc, expected 1: $out"
	[ "$(wc -l <<<"$out")" -eq 1 ] || fail "a mountpoint $1 inside the mount: more than one line: $out"
	[[ $out == "ckptfs: error: mountpoint $outer/"*" is inside the ckptfs mount $outer; mount it elsewhere" ]] ||
		fail "a mountpoint $1 inside the mount said: $out"
	[ "$(ckptfs_mounts_under "$TMP" | wc -l)" -eq 1 ] ||
		fail "a mountpoint $1 inside the mount: $(ckptfs_mounts_under "$TMP")"
}
refused epoch-0001
refused epoch-0002/model
refused best
refused ./latest/optimizer

# the outer mount is not kept busy: it unmounts, and its daemon exits 0
unmount_store "$outer"
echo "test_mount_nested: ok"
