#!/usr/bin/env bash
# tests/integration/test_security_backup_dest.sh - `ckpt backup STORE DEST` into a DEST that
# another user can write (tests/README.md, security model): that user replaces
# DEST/data.mdb.tmp/ by a link to another store of the backup's user while the copy waits there
# to be checked (CKPT_BACKUP_TEST_PAUSE). The backup uses DEST and data.mdb.tmp/ through the
# descriptors it opened, so the other store is neither renamed into DEST nor removed (it used to
# be checked through the link, its data.mdb renamed into DEST and then unlinked): the backup
# fails in one line and leaves no data.mdb in DEST. Run as root, with uid 12345 as the backup's
# user and uid 12346 as the other one (setpriv); no root privilege is involved in the backup.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
CKPT=$BIN/ckpt
TRAIN=$BIN/ckpt-train
[ -x "$CKPT" ] && [ -x "$TRAIN" ] || fail "build/bin/ckpt or ckpt-train is missing (run make)"
skip_unless_root_setpriv test_security_backup_dest 12345
as_a=(setpriv --reuid=12345 --regid=12345 --clear-groups)
as_b=(setpriv --reuid=12346 --regid=12346 --clear-groups)
opts=(--data synthetic --layers 784,8,10 --val-split 200 --threads 1 --no-sync --quiet)
mkdir -m 700 "$TMP/a"
chown 12345:12345 "$TMP/a"
for s in src other; do
	"${as_a[@]}" "$TRAIN" --store "$TMP/a/$s" "${opts[@]}" --epochs 2 >"$TMP/train.log" 2>&1 ||
		fail "a store of uid 12345: $(tail -n 3 "$TMP/train.log")"
done
"$CKPT" log "$TMP/a/other" >"$TMP/other.log" || fail "ckpt log other"
sha256sum <"$TMP/a/other/data.mdb" >"$TMP/other.sum"
mkdir -m 777 "$TMP/dest" "$TMP/p" # everyone's
PAUSE=$TMP/p/pause

"${as_a[@]}" env CKPT_BACKUP_TEST_PAUSE="$PAUSE" "$CKPT" backup "$TMP/a/src" "$TMP/dest" \
	>"$TMP/out" 2>"$TMP/err" &
pid=$!
for i in $(seq 1 600); do
	[ -e "$PAUSE" ] && break
	kill -0 $pid 2>/dev/null || fail "ckpt backup did not pause: $(cat "$TMP/err")"
	sleep 0.05
done
[ -e "$PAUSE" ] || fail "ckpt backup did not pause"
"${as_b[@]}" bash -c 'mv "$1/data.mdb.tmp" "$1/moved" && ln -s "$2" "$1/data.mdb.tmp"' _ \
	"$TMP/dest" "$TMP/a/other" || fail "uid 12346 could not replace data.mdb.tmp"
rm -f "$PAUSE"
wait $pid && fail "the backup through a replaced data.mdb.tmp succeeded: $(cat "$TMP/out")"
[ -n "${SHOW_ERRORS:-}" ] && cat "$TMP/err"
[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "not one line: $(cat "$TMP/err")"
grep -q "data.mdb.tmp" "$TMP/err" || fail "the error does not name data.mdb.tmp: $(cat "$TMP/err")"
[ -e "$TMP/a/other/data.mdb" ] || fail "the other store's data.mdb is gone"
sha256sum <"$TMP/a/other/data.mdb" | cmp -s - "$TMP/other.sum" || fail "the other store changed"
"$CKPT" log "$TMP/a/other" | cmp -s - "$TMP/other.log" || fail "the other store lost checkpoints"
[ -e "$TMP/dest/data.mdb" ] && fail "DEST holds a data.mdb: $(ls -l "$TMP/dest")"
[ -e "$TMP/dest/moved/data.mdb" ] && fail "the copy was left in the moved directory"

# left alone, the same backup is made
rm -rf "$TMP/dest"
mkdir -m 777 "$TMP/dest"
"${as_a[@]}" "$CKPT" backup "$TMP/a/src" "$TMP/dest" >"$TMP/out" 2>&1 ||
	fail "ckpt backup: $(cat "$TMP/out")"
"${as_a[@]}" "$CKPT" verify "$TMP/dest" >"$TMP/out" 2>&1 || fail "ckpt verify the backup: $(cat "$TMP/out")"
[ -e "$TMP/dest/data.mdb.tmp" ] && fail "the backup left data.mdb.tmp"
echo "test_security_backup_dest: ok"
