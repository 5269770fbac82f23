#!/usr/bin/env bash
# tests/integration/test_error_long.sh - no length cuts off an error's reason: a store path of
# 70,000 (and 130,000) bytes gives one line that ends in the reason (libckpt's message was cut
# at 16 KiB, so the line ended in the middle of the path, without ': File name too long'; so
# was ckpt-train's own).
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_built "$CKPT" "$TRAIN"

for n in 70000 130000; do
	name=$(head -c "$n" /dev/zero | tr '\0' y)
	for cmd in info log verify; do
		what="ckpt $cmd (a $n-byte name)"
		"$CKPT" "$cmd" "$WORK/$name" >"$WORK/out" 2>"$WORK/err"
		rc=$?
		[ $rc -eq 1 ] || fail "$what: exit status $rc, not 1"
		[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "$what: not one line"
		[ "$(tail -c 20 "$WORK/err")" = "File name too long)" ] ||
			fail "$what: the line ends in '$(tail -c 60 "$WORK/err")'"
		# the command names the path, and libckpt's reason names it whole again
		printf "ckpt: error: cannot open store '%s' (%s: File name too long)\n" \
			"$WORK/$name" "$WORK/$name" | cmp -s - "$WORK/err" ||
			fail "$what: libckpt's reason does not name the whole path"
	done
	# ckpt-train's own messages (its 16 KiB buffer cut them too)
	for args in "--data synthetic" "--data synthetic --resume"; do
		what="ckpt-train $args (a $n-byte store name)"
		# shellcheck disable=SC2086 # the options are words
		"$TRAIN" --store "$WORK/$name" $args --quiet >"$WORK/out" 2>"$WORK/err"
		rc=$?
		[ $rc -ne 0 ] || fail "$what: exit status 0"
		[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "$what: not one line: $(tail -c 300 "$WORK/err")"
		[ "$(tail -c 20 "$WORK/err")" = "File name too long)" ] ||
			fail "$what: the line ends in '$(tail -c 60 "$WORK/err")'"
	done
done
echo "test_error_long: ok"
