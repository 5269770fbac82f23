#!/usr/bin/env bash
# tests/integration/test_mount_namelen.sh - a name longer than the mount's f_namemax (255 bytes)
# fails with ENAMETOOLONG, as on a local file system, not ENOENT; 255 bytes is a plain ENOENT.
# ckpt ls and ckpt cat say the same ("File name too long").
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse

make_store "$TMP/store" 1 && mount_store "$TMP/store" "$TMP/mnt"
[ "$(stat -f -c %l "$TMP/mnt")" = 255 ] || fail "f_namemax is $(stat -f -c %l "$TMP/mnt"), not 255"
"$PY" - "$TMP/mnt" <<'PY' || fail "lookup of long names"
import errno, os, sys
mnt = sys.argv[1]
for where in ("", "/epoch-0001", "/epoch-0001/model"):
    for n, want in ((255, errno.ENOENT), (256, errno.ENAMETOOLONG), (4000, errno.ENAMETOOLONG)):
        path = mnt + where + "/" + "a" * n
        try:
            os.stat(path)
            sys.exit(f"stat of a {n}-byte name in {where or '/'} succeeded")
        except OSError as e:
            if e.errno != want:
                sys.exit(f"stat of a {n}-byte name in {where or '/'}: {errno.errorcode[e.errno]}, "
                         f"not {errno.errorcode[want]}")
PY
unmount_store "$TMP/mnt"

# the view decides, so ckpt ls and ckpt cat answer as the mount does: one line, exit 1
long=$(printf 'a%.0s' $(seq 300))
for args in "cat $long" "cat epoch-0001/$long" "ls $long" "ls epoch-0001/model/$long"; do
	read -r cmd path <<<"$args"
	"$BIN/ckpt" "$cmd" "$TMP/store" "$path" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ $rc = 1 ] || fail "ckpt $cmd of a 300-byte name: exit $rc"
	[ "$(wc -l <"$TMP/err")" = 1 ] && grep -q "File name too long" "$TMP/err" ||
		fail "ckpt $cmd of a 300-byte name said: $(cat "$TMP/err")"
	[ -s "$TMP/out" ] && fail "ckpt $cmd of a 300-byte name wrote: $(head -c 200 "$TMP/out")"
done
"$BIN/ckpt" cat "$TMP/store" "${long:0:255}" 2>"$TMP/err" && fail "ckpt cat of a 255-byte name succeeded"
grep -q "No such file" "$TMP/err" || fail "ckpt cat of a 255-byte name said: $(cat "$TMP/err")"
echo "test_mount_namelen: ok"
