#!/usr/bin/env bash
# tests/integration/test_store_ulimits.sh - process limits smaller than a store give one clear
# line naming the limit, never a wrong cause: under ulimit -f (SIGXFSZ ignored) a commit and a
# create say "file too large" and the limit, not "no space left on device", and the epochs
# before stay intact.
. "$(dirname "$0")/lib.sh"
need_built "$TRAIN" "$CKPT"
trap '' XFSZ # the writes past the limit then fail with EFBIG instead of killing the process
common=(--data synthetic --layers 784,256,10 --epochs 3 --no-sync --quiet)

one_line_with() { # one_line_with FILE TEXT: FILE is one line holding TEXT, and no "no space"
	[ "$(wc -l <"$1")" -eq 1 ] && grep -qF "$2" "$1" && ! grep -qi "no space" "$1" ||
		fail "want one line with '$2': $(cat "$1")"
}

# ---- ulimit -f: 3000 KiB hold the first epoch (about 1.6 MB), not the second
(ulimit -f 3000 && exec $TRAIN --store "$WORK/f" "${common[@]}") 2>"$WORK/f.err"
rc=$?
[ "$rc" -eq 1 ] || fail "ckpt-train under ulimit -f 3000: exit $rc, want 1"
one_line_with "$WORK/f.err" "epoch 2: committing: file too large: the file size limit (ulimit -f) is 3072000 bytes"
$CKPT info "$WORK/f" | grep -qx "latest: epoch-0001" || fail "epoch 1 is not the latest after the refused commit"
$CKPT verify "$WORK/f" >/dev/null || fail "ckpt verify after the refused commit"
$TRAIN --store "$WORK/f" --resume --epochs 3 --no-sync --quiet || fail "--resume without the limit"
(ulimit -f 4 && exec $TRAIN --store "$WORK/g" "${common[@]}") 2>"$WORK/g.err"
rc=$?
[ "$rc" -eq 1 ] || fail "ckpt-train under ulimit -f 4: exit $rc, want 1"
one_line_with "$WORK/g.err" "creating the LMDB environment: file too large: the file size limit (ulimit -f) is 4096 bytes"
[ ! -e "$WORK/g" ] || fail "a refused create left $(ls -la "$WORK/g")"
echo "ok: ulimit -f is named as the cause"
