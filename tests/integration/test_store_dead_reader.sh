#!/usr/bin/env bash
# tests/integration/test_store_dead_reader.sh - a reader that dies with a snapshot open
# (`ckpt cat | head`, ended by SIGPIPE) while ckpt-train runs with --keep-last 2 leaves a slot in
# lock.mdb; the run clears it at its next commit and reuses the pages retention frees, so
# data.mdb stays near the size of the same run without that reader (it grew by a checkpoint per
# epoch before).
. "$(dirname "$0")/lib.sh"
need_built "$TRAIN" "$CKPT"
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	lib_cleanup
}
trap cleanup EXIT
store=$WORK/run
$TRAIN --store "$store" --data synthetic --layers 784,256,10 --epochs 2 --keep-last 2 \
	--no-sync --quiet || fail "first run"
cp -r "$store" "$WORK/ref"

$TRAIN --store "$store" --resume --epochs 24 --no-sync --quiet 2>"$WORK/train.err" &
pid=$!
past_epoch() { [ "$($CKPT info "$store" 2>/dev/null | sed -n 's/^latest: epoch-0*//p')" -ge "$1" ] 2>/dev/null; }
wait_until 30 "$pid" past_epoch 4 || fail "the run committed no 4th epoch: $(cat "$WORK/train.err")"
$CKPT cat "$store" latest/model.pt 2>/dev/null | head -c 4 >/dev/null
cat_status=${PIPESTATUS[0]}
[ "$cat_status" -eq 141 ] || fail "ckpt cat was not ended by SIGPIPE (exit $cat_status)"
past_epoch 20 && fail "the run ended before the reader died: use more epochs"
wait "$pid" || fail "run with a dead reader: $(cat "$WORK/train.err")"
pid=
$TRAIN --store "$WORK/ref" --resume --epochs 24 --no-sync --quiet || fail "reference run"

size() { $CKPT info "$1" | sed -n 's/^file-size: //p'; }
with=$(size "$store")
without=$(size "$WORK/ref")
[ "$with" -le $((without * 3 / 2)) ] ||
	fail "data.mdb is $with bytes after a reader died with a snapshot open, $without without"
$CKPT verify "$store" >/dev/null || fail "ckpt verify"
echo "ok: data.mdb $with bytes with a dead reader, $without without"
