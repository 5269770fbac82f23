#!/usr/bin/env bash
# tests/integration/test_cli_gc_keepall.sh - `ckpt gc --keep-last 0` agrees with
# `ckpt-train --resume --keep-last 0`: without --keep-top it keeps every checkpoint and drops
# the store's keep-top, with one note on stderr, exit 0; an explicit --keep-top K > 0 with
# --keep-last 0 is a usage error (exit 2) in both, and changes nothing.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_built "$CKPT" "$TRAIN"

retention() { "$CKPT" info "$1" | grep '^keep-' | tr '\n' ' '; }
S=$WORK/kt
"$TRAIN" --store "$S" --data synthetic --layers 784,4,10 --epochs 2 --keep-last 3 --keep-top 2 \
	--quiet || fail "the run with --keep-last 3 --keep-top 2"
[ "$(retention "$S")" = "keep-last: 3 keep-top: 2 " ] || fail "stored retention: $(retention "$S")"
cp -r "$S" "$WORK/kt2"

# an explicit --keep-top with --keep-last 0: refused in both, nothing changed
before=$(cksum <"$S/data.mdb")
out=$("$CKPT" gc "$S" --keep-last 0 --keep-top 1 2>&1)
rc=$?
[ $rc -eq 2 ] && [ "$out" = "ckpt: error: gc: --keep-top 1 has no effect without --keep-last N (every checkpoint is kept)" ] ||
	fail "gc --keep-last 0 --keep-top 1: exit $rc: $out"
out=$("$TRAIN" --store "$S" --resume --epochs 3 --keep-last 0 --keep-top 1 --quiet 2>&1)
rc=$?
[ $rc -eq 2 ] && grep -q -- "--keep-top 1 has no effect without --keep-last N" <<<"$out" ||
	fail "ckpt-train --resume --keep-last 0 --keep-top 1: exit $rc: $out"
[ "$before" = "$(cksum <"$S/data.mdb")" ] || fail "a refused retention changed the store"

# --keep-last 0 alone: every checkpoint kept, the store's keep-top dropped, one note
out=$("$CKPT" gc "$S" --keep-last 0 2>"$WORK/err")
rc=$?
[ $rc -eq 0 ] || fail "gc --keep-last 0: exit $rc: $(cat "$WORK/err")"
[ "$(cat "$WORK/err")" = "ckpt: note: keep-last 0 keeps every checkpoint; the store's keep-top 2 no longer applies" ] ||
	fail "gc --keep-last 0: wanted one note: $(cat "$WORK/err")"
[ "$out" = "gc: deleted 0 checkpoints; keep-last 0, keep-top 0" ] || fail "gc --keep-last 0 printed: $out"
[ "$(retention "$S")" = "keep-last: 0 keep-top: 0 " ] || fail "retention after gc: $(retention "$S")"
# again: nothing to drop, no note
"$CKPT" gc "$S" --keep-last 0 >/dev/null 2>"$WORK/err" && [ ! -s "$WORK/err" ] ||
	fail "a second gc --keep-last 0: $(cat "$WORK/err")"

# ckpt-train --resume --keep-last 0 does the same on the copy
"$TRAIN" --store "$WORK/kt2" --resume --epochs 3 --keep-last 0 --quiet 2>"$WORK/err" ||
	fail "ckpt-train --resume --keep-last 0: $(cat "$WORK/err")"
[ "$(cat "$WORK/err")" = "ckpt-train: note: keep-last 0 keeps every checkpoint; the store's keep-top 2 no longer applies" ] ||
	fail "ckpt-train --resume --keep-last 0: wanted one note: $(cat "$WORK/err")"
[ "$(retention "$WORK/kt2")" = "keep-last: 0 keep-top: 0 " ] ||
	fail "retention after the resume: $(retention "$WORK/kt2")"
[ "$("$CKPT" info "$WORK/kt2" | grep '^checkpoints:')" = "checkpoints: 3" ] ||
	fail "the resume did not keep every checkpoint: $("$CKPT" info "$WORK/kt2" | grep '^checkpoints:')"
echo "PASS test_cli_gc_keepall"
