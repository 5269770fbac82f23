#!/usr/bin/env bash
# tests/integration/test_error_long.sh - no length cuts off an error's reason: a store path of
# 70,000 (and 130,000) bytes gives one line that ends in the reason (libckpt's message was cut
# at 16 KiB, so the line ended in the middle of the path, without ': File name too long').
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_built "$CKPT"

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
done
echo "test_error_long: ok"
