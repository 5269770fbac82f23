#!/usr/bin/env bash
# tests/integration/test_mount_store_errors.sh - a store ckptfs cannot open is one line in the
# words the ckpt commands use: "cannot open store 'STORE' (libckpt's reason)", the store quoted
# as given, its reason said once. It was "cannot open store /tmp/w (not a checkpoint store:
# /tmp/w: not a ckpt store (no data.mdb))", quoted only when the path did not resolve.
#
# A store path is shown without its trailing slashes, as the ckpt commands show it.
#
# Nothing is mounted: each command fails before mounting.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
[ -x "$BIN/ckptfs" ] && [ -x "$BIN/ckpt" ] || fail "build/bin/ckptfs or build/bin/ckpt is missing (run make)"

cd "$TMP" || fail "cd $TMP"
mkdir empty mnt garbage
echo "not a store" >file
head -c 65536 /dev/urandom >garbage/data.mdb

# same_as_ckpt STORE: ckptfs STORE mnt says exactly what ckpt ls STORE says, exit 1 both
same_as_ckpt() {
	local out rc want
	out=$("$BIN/ckptfs" "$1" mnt 2>&1)
	rc=$?
	want=$("$BIN/ckpt" ls "$1" 2>&1)
	[ $rc -eq 1 ] || fail "ckptfs '$1' mnt: exit $rc, expected 1: $out"
	[ "$(wc -l <<<"$out")" -eq 1 ] || fail "ckptfs '$1' mnt: more than one line: $out"
	[[ $want == "ckpt: error: cannot open store "* ]] || fail "ckpt ls '$1' said: $want"
	[ "${out#ckptfs: error: }" = "${want#ckpt: error: }" ] ||
		fail "ckptfs '$1' mnt said: $out (ckpt ls says: $want)"
	[ "$(grep -o "not a ckpt store" <<<"$out" | wc -l)" -le 1 ] || fail "ckptfs '$1' mnt: $out"
	grep -q "not a checkpoint store" <<<"$out" && fail "ckptfs '$1' mnt: the reason said twice: $out"
	return 0
}
for store in empty "$TMP/empty" file "$TMP/file" garbage "$TMP/garbage" nosuch "$TMP/nosuch" ''; do
	same_as_ckpt "$store"
done
out=$("$BIN/ckptfs" "$TMP/empty" mnt 2>&1)
[ "$out" = "ckptfs: error: cannot open store '$TMP/empty' ($TMP/empty: not a ckpt store (no data.mdb))" ] ||
	fail "an empty directory as the store: $out"
# trailing slashes: the store opened and shown without them, as the ckpt commands do (ckptfs
# said '$TMP/nosuch///')
for store in "$TMP/nosuch///" nosuch/ "$TMP/empty/" file/ //; do
	same_as_ckpt "$store"
done
out=$("$BIN/ckptfs" "$TMP/nosuch///" mnt 2>&1)
[ "$out" = "ckptfs: error: cannot open store '$TMP/nosuch' ($TMP/nosuch: No such file or directory)" ] ||
	fail "a store path with trailing slashes: $out"
is_mounted "$TMP/mnt" && fail "something is mounted at $TMP/mnt"
echo "test_mount_store_errors: ok"
