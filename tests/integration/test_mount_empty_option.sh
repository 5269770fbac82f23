#!/usr/bin/env bash
# tests/integration/test_mount_empty_option.sh - an empty element of -o (-o ro,,ro, a leading
# or trailing comma) is ignored, as mount(8) ignores it, like -o "" always was; the other
# elements still count. It was refused as libfuse's "unknown option(s): `-o '", exit 2.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse

make_store "$TMP/store" 1
for opts in "ro,,ro" ",ro" "ro," "," "" "ro,,,snapshot_idle=0"; do
	mount_store "$TMP/store" "$TMP/mnt" -o "$opts"
	[ -f "$TMP/mnt/epoch-0001/metrics.json" ] || fail "-o '$opts': the mount shows no epoch-0001"
	unmount_store "$TMP/mnt"
done
[ -s "$TMP/ckptfs.log" ] && fail "the mounts said: $(cat "$TMP/ckptfs.log")"

# the elements around an empty one are still judged
out=$("$BIN/ckptfs" "$TMP/store" "$TMP/mnt" -o ",,bogus" 2>&1)
rc=$?
[ $rc -eq 2 ] && [ "$out" = "ckptfs: error: fuse: unknown option(s): \`-o bogus'" ] ||
	fail "-o ',,bogus': exit $rc: $out"
out=$("$BIN/ckptfs" "$TMP/store" "$TMP/mnt" -o "ro,,snapshot_idle=x" 2>&1)
rc=$?
[ $rc -eq 2 ] && [ "$out" = "ckptfs: error: -o snapshot_idle=x: expected a whole number from 0 to 4294967295" ] ||
	fail "-o 'ro,,snapshot_idle=x': exit $rc: $out"
is_mounted "$TMP/mnt" && fail "something is mounted at $TMP/mnt"
echo "test_mount_empty_option: ok"
