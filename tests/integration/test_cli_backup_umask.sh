#!/usr/bin/env bash
# tests/integration/test_cli_backup_umask.sh - `ckpt backup` run as root under umask 000 makes
# a DEST that the ckpt commands open: DEST gets mode 0755 as a store ckpt-train creates (it got
# 0777, which every command run as root then refused as writable by every user, although the
# backup had printed its success line).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_built "$CKPT" "$TRAIN"
[ "$(id -u)" = 0 ] || skip "needs root (a store writable by every user is refused only as root)"
opts=(--data synthetic --layers 784,8,10 --val-split 200 --threads 1 --no-sync --quiet)
"$TRAIN" --store "$WORK/src" "${opts[@]}" --epochs 1 >"$WORK/train.log" 2>&1 ||
	fail "ckpt-train: $(tail -n 3 "$WORK/train.log")"

(umask 000 && "$CKPT" backup "$WORK/src" "$WORK/dest") >"$WORK/out" 2>&1 ||
	fail "ckpt backup under umask 000: $(cat "$WORK/out")"
mode=$(stat -c %a "$WORK/dest")
[ "$mode" = 755 ] || fail "DEST made under umask 000 has mode $mode, not 755"
for cmd in info log verify; do
	(umask 000 && "$CKPT" "$cmd" "$WORK/dest") >"$WORK/out" 2>&1 ||
		fail "ckpt $cmd of the backup made under umask 000: $(cat "$WORK/out")"
done
"$CKPT" log "$WORK/src" >"$WORK/src.log" && "$CKPT" log "$WORK/dest" >"$WORK/dest.log" &&
	cmp -s "$WORK/src.log" "$WORK/dest.log" || fail "the backup's log differs from the store's"

# under the usual umask 022 the same mode
(umask 022 && "$CKPT" backup "$WORK/src" "$WORK/dest022") >"$WORK/out" 2>&1 ||
	fail "ckpt backup under umask 022: $(cat "$WORK/out")"
mode=$(stat -c %a "$WORK/dest022")
[ "$mode" = 755 ] || fail "DEST made under umask 022 has mode $mode, not 755"
echo "test_cli_backup_umask: ok"
