#!/usr/bin/env bash
# tests/integration/test_mount_live.sh - a mount while ckpt-train runs: new epochs appear, best
# and latest move within a second of each commit, retention deletes epochs under an open file.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse

store=$TMP/store
mnt=$TMP/mnt
epochs=24
if trainer_usable; then
	"$BIN/ckpt-train" --store "$store" --data synthetic --epochs $epochs --layers 784,256,128,10 \
		--threads 1 --keep-last 3 --quiet >"$TMP/train.log" 2>&1 &
	writer=ckpt-train
else
	[ -x "$TOOLS/mkstore_many" ] || fail "neither ckpt-train nor build/tests/tools/mkstore_many"
	"$TOOLS/mkstore_many" "$store" --epochs $epochs --interval-ms 200 --keep-last 3 \
		>"$TMP/train.log" 2>&1 &
	writer=mkstore_many
fi
wpid=$!
PIDS+=("$wpid")
for _ in $(seq 1 400); do
	[ -e "$store/data.mdb" ] && "$BIN/ckpt" info "$store" >/dev/null 2>&1 && break
	kill -0 "$wpid" 2>/dev/null || fail "$writer exited early: $(tail -n 3 "$TMP/train.log")"
	sleep 0.05
done
mount_store "$store" "$mnt"
"$PY" "$(dirname "$0")/mount_live.py" "$mnt" "$wpid" 60 || fail "live view while $writer ran"
wait "$wpid" || fail "$writer failed: $(tail -n 3 "$TMP/train.log")"
sleep 1.1 # live timeouts are 0.5 s
want_best=$("$BIN/ckpt" info "$store" | sed -n 's/^best: \(epoch-[0-9]*\).*/\1/p')
[ "$(readlink "$mnt/best")" = "$want_best" ] || fail "best is $(readlink "$mnt/best"), store says $want_best"
[ "$(readlink "$mnt/latest")" = "$(printf 'epoch-%04d' $epochs)" ] || fail "latest is $(readlink "$mnt/latest")"
n=$(ls "$mnt" | grep -c '^epoch-')
[ "$n" -eq "$("$BIN/ckpt" info "$store" | sed -n 's/^checkpoints: //p')" ] || fail "root shows $n epochs"
unmount_store "$mnt"
echo "test_mount_live: ok ($writer)"
