#!/usr/bin/env bash
# tests/integration/test_store_ulimits.sh - process limits smaller than a store give one clear
# line naming the limit, never a wrong cause: under ulimit -f (SIGXFSZ ignored) a commit and a
# create say "file too large" and the limit, not "no space left on device", and the epochs
# before stay intact; under ulimit -v the read-only commands map no more than data.mdb (they
# needed 1 GiB), and where even that is refused they say how much they need.
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

# ---- ulimit -v: a 500 MB address space reads a small store
store=$WORK/v
$TRAIN --store "$store" --data synthetic --layers 784,16,10 --epochs 2 --no-sync --quiet || fail "training"
for cmd in info log verify cat; do
	path=()
	[ "$cmd" = cat ] && path=(latest/model.pt)
	(ulimit -v 500000 && exec $CKPT "$cmd" "$store" "${path[@]}") >/dev/null 2>"$WORK/v.err" ||
		fail "ckpt $cmd under ulimit -v 500000: $(cat "$WORK/v.err")"
done
# a data.mdb of 256 MiB (a sparse tail) in 100 MB: one line with what it needs
truncate -s 256M "$store/data.mdb" || fail "truncate"
(ulimit -v 100000 && exec $CKPT info "$store") >/dev/null 2>"$WORK/v.err"
rc=$?
[ "$rc" -eq 1 ] && [ "$(wc -l <"$WORK/v.err")" -eq 1 ] &&
	grep -qF "not enough address space to map data.mdb: it needs 268435456 bytes, and ulimit -v is 100000 KiB" "$WORK/v.err" ||
	fail "ckpt info of a 256 MiB store under ulimit -v 100000: exit $rc: $(cat "$WORK/v.err")"
echo "ok: ulimit -f is named as the cause; ulimit -v 500000 reads a small store, and a store too big says so"
