#!/usr/bin/env bash
# tests/integration/test_cli_names.sh - `ckpt info`, `log` and `show` print every string of the
# store so that it cannot forge or split a line or a column: control characters as \xNN (in
# `log`'s header and `show`'s names also spaces and backslashes), a metric named like a fixed
# column of `log` (epoch, step, best) as metric:NAME. Stores come from
# build/tests/tools/store_names.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
NAMES=$TOOLS/store_names
need_built "$CKPT" "$NAMES"
store=$WORK/names
"$NAMES" "$store" || fail "store_names"

# ---- info: one line per key, the dataset's newline cannot add a "best:" line
out=$("$CKPT" info "$store") || fail "info: exit $?"
grep -qxF 'dataset: synthetic\x0abest: epoch-0042' <<<"$out" || fail "info: dataset not escaped: $out"
grep -qxF 'model: mlp\x09x' <<<"$out" || fail "info: model not escaped: $out"
grep -qxF 'monitor: val loss (min)' <<<"$out" || fail "info: monitor: $out"
[ "$(grep -c '^best:' <<<"$out")" -eq 1 ] && grep -qx 'best: epoch-0001' <<<"$out" ||
	fail "info: forged best line: $out"
[ "$(grep -c '^[a-z-]*: ' <<<"$out")" -eq "$(wc -l <<<"$out")" ] || fail "info: a line is not 'key: value': $out"

# ---- log: the header has one word per column, "best" once and last
out=$("$CKPT" log "$store") || fail "log: exit $?"
[ "$(wc -l <<<"$out")" -eq 3 ] || fail "log: expected 3 lines: $out"
header=$(head -1 <<<"$out")
want=$(printf '%-10s %10s %12s %12s %12s %12s %12s best' epoch step 'a\x0ab' $'acc\xff' metric:best metric:epoch 'val\x20loss')
[ "$header" = "$want" ] || fail "log header: '$header', want '$want'"
[ "$(wc -w <<<"$header")" -eq 8 ] || fail "log header: $(wc -w <<<"$header") words: $header"
row=$(sed -n 2p <<<"$out")
[ "$(wc -w <<<"$row")" -eq 8 ] && grep -qE '^epoch-0001 +10 +9 +1 +7 +8 +0\.5 \*$' <<<"$row" ||
	fail "log: first row: $row"

# ---- show: a space in a tensor name stays inside its column
out=$("$CKPT" show "$store" 1) || fail "show: exit $?"
grep -qE '^w\\x201 float32 \[2\] cpu 8 0x[0-9a-f]{8}$' <<<"$out" || fail "show: $out"
echo "test_cli_names: ok"
