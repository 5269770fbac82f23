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
command -v mdb_dump >/dev/null && command -v mdb_load >/dev/null || skip "mdb_dump/mdb_load missing (lmdb-utils)"
store=$WORK/names
# names that are not UTF-8 are refused now; stores written before may hold them
CKPT_STORE_TEST_OLD_INPUT=1 "$NAMES" "$store" || fail "store_names"

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

# ---- strings that are not UTF-8: metrics.json and run.json stay valid JSON, each bad byte
# U+FFFD; history.csv's header likewise
for f in epoch-0001/metrics.json run.json; do
	"$CKPT" cat "$store" "$f" >"$WORK/json" 2>"$WORK/err" || fail "cat $f: exit $?: $(cat "$WORK/err")"
	python3 -c 'import json, sys; json.load(open(sys.argv[1], encoding="utf-8", errors="strict"))' "$WORK/json" ||
		fail "$f is not valid JSON: $(cat "$WORK/json")"
done
python3 - "$WORK/json" <<'PY' || fail "run.json: optimizer not 'sgd\ufffd': $(cat "$WORK/json")"
import json, sys
sys.exit(json.load(open(sys.argv[1]))["optimizer"] != "sgd\ufffd")
PY
"$CKPT" cat "$store" epoch-0001/metrics.json | python3 -c '
import json, sys
m = json.load(sys.stdin)["metrics"]
sys.exit(m != {"a\nb": 9.0, "acc\ufffd": 1.0, "best": 7.0, "epoch": 8.0, "val loss": 0.5})' ||
	fail "metrics.json: wrong metrics: $("$CKPT" cat "$store" epoch-0001/metrics.json)"
"$CKPT" cat "$store" history.csv | head -1 | iconv -f UTF-8 -t UTF-8 >/dev/null ||
	fail "history.csv's header is not UTF-8"
out=$("$CKPT" ls -l "$store" epoch-0001 2>"$WORK/err") || fail "ls -l: exit $?: $(cat "$WORK/err")"
grep -qE '^-r--r--r-- +[0-9]+ .* metrics\.json$' <<<"$out" || fail "ls -l: metrics.json: $out"

# ---- ls -l: an entry that cannot be read is named on stderr (one line), exit 1, and listed
# with '?' for what is unknown, as GNU ls does; the others are listed. Epoch 2's checkpoint record damaged (a CRC byte changed):
mdb_dump -s ckpt "$store" >"$WORK/ckpt.dump" || fail "mdb_dump"
awk 'prev == " 0000000000000002" { $0 = substr($0, 1, length($0) - 1) (substr($0, length($0)) == "0" ? "1" : "0") }
	!/^db_pagesize=/ { print } { prev = $0 }' "$WORK/ckpt.dump" >"$WORK/ckpt.bad"
mdb_load -s ckpt -f "$WORK/ckpt.bad" "$store" || fail "mdb_load"
"$CKPT" ls -l "$store" >"$WORK/out" 2>"$WORK/err"
rc=$?
[ "$rc" -eq 1 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] && grep -qx 'ckpt: error: ls: epoch-0002: corrupt record (.*checkpoint record is damaged (CRC-32 .*)))' "$WORK/err" ||
	fail "ls -l of a damaged epoch: exit $rc, stderr: $(cat "$WORK/err")"
grep -q '^d?????????  *?  *? epoch-0002$' "$WORK/out" && grep -q ' epoch-0001$' "$WORK/out" && grep -q ' run\.json$' "$WORK/out" ||
	fail "ls -l of a damaged epoch listed: $(cat "$WORK/out")"
echo "test_cli_names: ok"
