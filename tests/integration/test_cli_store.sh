#!/usr/bin/env bash
# tests/integration/test_cli_store.sh - the `ckpt` store commands: info, log, show, verify, gc,
# and their handling of bad arguments (one line on stderr, exit 1 or 2, nothing changed).
# Stores are written through libckpt by build/tests/tools/store_fixture.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
FIX=$TOOLS/store_fixture
for b in "$CKPT" "$FIX"; do
	[ -x "$b" ] || fail "missing $b: run make test"
done

tmp=$WORK
trap 'chmod -R u+w "$tmp" 2>/dev/null; lib_cleanup' EXIT
fails=0
fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}

# run CMD...: sets $out, $err, $rc
run() {
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	out=$(cat "$tmp/out")
	err=$(cat "$tmp/err")
}

# expect_error STATUS PATTERN CMD...: exit STATUS, one stderr line "ckpt: error: ..." matching
expect_error() {
	local want=$1 pat=$2
	shift 2
	run "$@"
	[ "$rc" -eq "$want" ] || fail "'$*': exit $rc, expected $want (stderr: $err)"
	[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "'$*': expected one stderr line, got: $err"
	case "$err" in
	"ckpt: error: "*) ;;
	*) fail "'$*': stderr does not start with 'ckpt: error:': $err" ;;
	esac
	grep -qE -- "$pat" "$tmp/err" || fail "'$*': stderr '$err' does not match '$pat'"
	[ -z "$out" ] || fail "'$*': printed to stdout on error: $out"
}

store=$tmp/run
$FIX create "$store" 5 || exit 1

# ---- --help / --version ----
run $CKPT --version
[ $rc -eq 0 ] && grep -q '^ckpt [0-9]' <<<"$out" || fail "--version: $out"
run $CKPT --help
[ $rc -eq 0 ] && grep -q 'info STORE' <<<"$out" || fail "--help"
for c in info log show verify gc ls cat export; do
	run $CKPT $c --help
	[ $rc -eq 0 ] && [ -z "$err" ] && grep -q "usage: ckpt $c" <<<"$out" ||
		fail "$c --help: rc $rc $out $err"
	# the summary of ckpt --help shows each command's options, as its own --help does
	usage=$(sed -n 's/^usage: ckpt //p' <<<"$out")
	run $CKPT --help
	grep -qF "ckpt $usage" <<<"$out" || fail "ckpt --help lacks 'ckpt $usage': $out"
done

# each command's --help describes its output and its exit status, not only its usage
help_has() { # help_has CMD TEXT...: each TEXT is a fixed string of `ckpt CMD --help`
	local c=$1 t
	shift
	run $CKPT "$c" --help
	for t in "$@" "Exit status: 0"; do
		grep -qF -- "$t" <<<"$out" || fail "$c --help lacks '$t': $out"
	done
}
help_has info '"key: value"' 'latest and best (epoch-NNNN, or none)' 'best-value' 'stored-bytes' \
	'\xNN' '1 if the store cannot be read'
help_has log '"epoch step <metrics> best"' '%.6g' "'-' where the" "'*' at the end of the best" \
	'damaged record' 'metric:NAME' '1 if the store cannot be read or a record is damaged'
help_has show 'NAME DTYPE [SHAPE] DEVICE NBYTES 0xCRC32' 'optimizer/' 'extra/' '\xNN' \
	'at most 549755813887' \
	'1 if the store or the checkpoint cannot be read'
help_has verify 'verify: ok, N checkpoints, T tensors, B bytes' 'verify: P problems' \
	'bad tensor NAME' '1 when a problem is found'

# ---- info ----
run $CKPT info "$store"
[ $rc -eq 0 ] || fail "info: exit $rc: $err"
for line in 'checkpoints: 5' 'latest: epoch-0005' 'best: epoch-0002' 'best-value: 0.5' \
	'monitor: val_loss (min)' 'model: mlp' 'dataset: synthetic' 'seed: 7' 'chunk-size: 64'; do
	grep -qxF "$line" <<<"$out" || fail "info lacks '$line': $out"
done
bytes=$(sed -n 's/^bytes: //p' <<<"$out")
stored=$(sed -n 's/^stored-bytes: //p' <<<"$out")
# 5 epochs x (48 + 16 + 256 + 48 + 4) bytes; frozen and fc1.bias are stored once
[ "$bytes" = 1860 ] || fail "info bytes: $bytes"
[ -n "$stored" ] && [ "$stored" -lt "$bytes" ] || fail "info stored-bytes $stored not < $bytes"

# ---- log ----
run $CKPT log "$store"
[ $rc -eq 0 ] || fail "log: exit $rc"
[ "$(sed -n 1p <<<"$out")" = "$(printf '%-10s %10s %12s %12s best' epoch step train_loss val_loss)" ] ||
	fail "log header: $(sed -n 1p <<<"$out")"
[ "$(wc -l <<<"$out")" -eq 6 ] || fail "log: expected 6 lines: $out"
[ "$(grep -c '\*$' <<<"$out")" -eq 1 ] || fail "log: expected one '*': $out"
grep -qE '^epoch-0002 +200 +0\.6 +0\.5 \*$' <<<"$out" || fail "log: best row: $out"
grep -qE '^epoch-0005 +500 +0\.75 +0\.65$' <<<"$out" || fail "log: last row: $out"

# ---- show: every epoch spelling gives the same listing ----
run $CKPT show "$store" 2
show2=$out
[ $rc -eq 0 ] || fail "show 2: exit $rc $err"
for spec in epoch-0002 best 0002 epoch-2; do
	run $CKPT show "$store" $spec
	[ "$out" = "$show2" ] || fail "show $spec differs from show 2"
done
run $CKPT show "$store" latest
run2=$out
run $CKPT show "$store" 5
[ "$out" = "$run2" ] || fail "show latest differs from show 5"
bias_crc=$(python3 -c 'import zlib,struct; print("0x%08x" % zlib.crc32(struct.pack("<4f",1,2,3,4)))')
grep -qxF "fc1.bias float32 [4] cuda:0 16 $bias_crc" <<<"$show2" || fail "show: fc1.bias line: $show2"
grep -qE '^fc1\.weight float32 \[4,3\] cuda:0 48 0x[0-9a-f]{8}$' <<<"$show2" || fail "show: weight"
grep -qE '^optimizer/fc1\.weight\.step float32 \[\] cpu 4 0x[0-9a-f]{8}$' <<<"$show2" ||
	fail "show: 0-dim optimizer tensor: $show2"
[ "$(wc -l <<<"$show2")" -eq 5 ] || fail "show: expected 5 tensors"

# ---- verify ----
run $CKPT verify "$store"
[ $rc -eq 0 ] && grep -q '^verify: ok, 5 checkpoints, 25 tensors' <<<"$out" || fail "verify: $rc $out $err"

# ---- bad arguments ----
expect_error 1 "$tmp/missing" $CKPT info "$tmp/missing"
mkdir "$tmp/empty"
expect_error 1 "not a ckpt store" $CKPT log "$tmp/empty"
[ -z "$(ls -A "$tmp/empty")" ] || fail "opening a non-store created files: $(ls -A "$tmp/empty")"
mkdir "$tmp/junk"
head -c 20000 /dev/zero | tr '\0' 'x' >"$tmp/junk/data.mdb"
expect_error 1 "not an LMDB file" $CKPT verify "$tmp/junk"
[ "$(ls -A "$tmp/junk")" = data.mdb ] || fail "opening a non-LMDB file created files"
expect_error 1 "not a ckpt store" $CKPT info "$tmp/junk/data.mdb"
expect_error 1 "no such checkpoint" $CKPT show "$store" 9
expect_error 1 "no such checkpoint" $CKPT show "$store" epoch-0042
expect_error 2 "bad epoch" $CKPT show "$store" 4x
expect_error 2 "bad epoch" $CKPT show "$store" -1
expect_error 2 "bad epoch" $CKPT show "$store" epoch-
expect_error 2 "expected 2 arguments" $CKPT show "$store"
expect_error 2 "expected 1 argument" $CKPT info
expect_error 2 "expected 1 argument" $CKPT log "$store" extra
expect_error 2 "keep-last" $CKPT gc "$store" --keep-last abc
expect_error 2 "keep-top" $CKPT gc "$store" --keep-top -3
expect_error 2 "keep-last" $CKPT gc "$store" --keep-last 99999999999
expect_error 2 "unknown command" $CKPT frobnicate "$store"
# options getopt refuses: still one "ckpt: error:" line naming the option
expect_error 2 "gc: unknown option '--bogus'" $CKPT gc "$store" --bogus
expect_error 2 "gc: ambiguous option '--keep'" $CKPT gc --keep 2 "$store"
expect_error 2 "gc: option '--keep-last' needs a value" $CKPT gc "$store" --keep-last
expect_error 2 "gc: option '-t' needs a value" $CKPT gc "$store" -t
expect_error 2 "log: unknown option '-z'" $CKPT log -z "$store"
expect_error 2 "verify: unknown option '--bogus'" $CKPT verify --bogus "$store"
expect_error 2 "show: option '--help' takes no value" $CKPT show --help=1 "$store" 1
expect_error 2 "info: unknown option '-x'" $CKPT info -x "$store"
expect_error 2 "unknown option '--bogus'" $CKPT --bogus info "$store"
# every usage error of every command is one line, exit 2: an option after the arguments is
# still an option, unknown options read "unknown option" everywhere
expect_error 2 "log: unknown option '--x'" $CKPT log "$store" --x
expect_error 2 "info: unknown option '--bogus'" $CKPT info "$store" --bogus
expect_error 2 "show: unknown option '-q'" $CKPT show "$store" 1 -q
expect_error 2 "ls: unknown option '--bogus'" $CKPT ls "$store" --bogus
expect_error 2 "ls: unknown option '-x'" $CKPT ls -lx "$store"
expect_error 2 "cat: unknown option '--bogus'" $CKPT cat "$store" run.json --bogus
expect_error 2 "export: unknown option '--bogus'" $CKPT export "$store" 1 --bogus
expect_error 2 "expected 1 to 2 arguments, got 3" $CKPT ls "$store" a b
expect_error 2 "expected 2 arguments, got 1" $CKPT cat "$store"
expect_error 2 "expected 2 arguments, got 1" $CKPT export "$store" --format pt -o -
expect_error 2 "--format is missing" $CKPT export "$store" best -o "$tmp/x.pt"
expect_error 2 "-o FILE is missing" $CKPT export "$store" best --format pt
expect_error 2 "-o is an empty file name" $CKPT export "$store" best --format pt -o ''
# an option given again: the later value wins
$CKPT export "$store" best --format pt --format safetensors -o "$tmp/first" -o "$tmp/later" ||
	fail "export: options given twice were refused"
[ ! -e "$tmp/first" ] && [ "$(head -c 9 "$tmp/later" | tail -c 1)" = "{" ] ||
	fail "export: the later -o/--format does not win"
rm -f "$tmp/later"
expect_error 2 "bad epoch 'epoch-'" $CKPT export "$store" epoch- --format pt -o -
expect_error 2 "bad epoch '-2'" $CKPT export "$store" -2 --format pt -o -
# every number past the last epoch a store can hold (2^39 - 1) names that limit, whatever its
# digits: show and export alike
max="too large: epochs go up to 549755813887\\)"
expect_error 2 "$max" $CKPT show "$store" 99999999999999999999
expect_error 2 "$max" $CKPT export "$store" epoch-99999999999999999999 --format pt -o -
expect_error 2 "bad epoch '549755813888' \\($max" $CKPT show "$store" 549755813888
expect_error 2 "$max" $CKPT show "$store" epoch-18446744073709551615
expect_error 2 "$max" $CKPT export "$store" 549755813888 --format safetensors -o -
expect_error 1 "no checkpoint '549755813887'" $CKPT show "$store" 549755813887
expect_error 2 "bad epoch ''" $CKPT show "$store" ''
expect_error 1 "cannot open store '' \(store path is empty\)" $CKPT info ''
expect_error 1 "cannot open store '-'" $CKPT log -- -
expect_error 2 "unknown command ''" $CKPT ''
[ ! -e "$tmp/x.pt" ] && [ ! -e "$tmp/a" ] && [ ! -e "$tmp/b" ] || fail "a refused export wrote a file"
# a path with a newline cannot split the error line
expect_error 1 'cannot open store .*a\\x0ab' $CKPT info "$tmp/a
b"
# cat of a directory says what to do instead
expect_error 1 "cat: best is a directory \(ckpt cat reads files; try 'ckpt ls .* best'\)" \
	$CKPT cat "$store" best
expect_error 1 "cat: the root is a directory" $CKPT cat "$store" ''
# an epoch's directory by its number, as EPOCH is written elsewhere
latest_dir=$($CKPT info "$store" | sed -n 's/^latest: //p')
latest_num=$((10#${latest_dir#epoch-}))
[ "$($CKPT cat "$store" "$latest_num/metrics.json")" = "$($CKPT cat "$store" "$latest_dir/metrics.json")" ] ||
	fail "ckpt cat STORE $latest_num/metrics.json is not $latest_dir/metrics.json"
[ "$($CKPT ls "$store" "$latest_num")" = "$($CKPT ls "$store" "$latest_dir")" ] ||
	fail "ckpt ls STORE $latest_num is not $latest_dir"
expect_error 1 "cat: epoch-0999/model.pt: No such file" $CKPT cat "$store" 999/model.pt
[ "$($CKPT ls "$store" "./$latest_num/")" = "$($CKPT ls "$store" "$latest_dir")" ] &&
	[ "$($CKPT ls "$store" "/$latest_num")" = "$($CKPT ls "$store" "$latest_dir")" ] ||
	fail "ckpt ls STORE ./$latest_num/ or /$latest_num is not $latest_dir"
# a store path is printed as given less trailing slashes, whichever way it was given
run $CKPT info "$store/"
grep -qxF "store: $store" <<<"$out" || fail "info STORE/: $(head -1 <<<"$out")"
run $CKPT info "$store//"
grep -qxF "store: $store" <<<"$out" || fail "info STORE//: $(head -1 <<<"$out")"
run $CKPT ls "$store/"
[ $rc -eq 0 ] && grep -qx 'latest' <<<"$out" || fail "ls STORE/: $out $err"
# gc follows ckpt-train's retention rules: --keep-top needs --keep-last N > 0; one value per
# option; refused settings change nothing
before=$(cksum <"$store/data.mdb")
expect_error 2 "--keep-top 2 has no effect without --keep-last N" $CKPT gc "$store" --keep-top 2
expect_error 2 "--keep-top 2 has no effect" $CKPT gc "$store" --keep-top 2 --keep-last 0
expect_error 2 "expected 1 argument, got 2" $CKPT gc "$store" "$store"
[ "$before" = "$(cksum <"$store/data.mdb")" ] || fail "a refused gc changed the store"
held=$($CKPT info "$store" | grep '^checkpoints:')
$CKPT gc "$store" --keep-last 1 --keep-last 0 >/dev/null || fail "gc: an option given twice was refused"
[ "$($CKPT info "$store" | grep '^checkpoints:')" = "$held" ] ||
	fail "gc: the later --keep-last 0 (keep all) does not win"

if [ -w /dev/full ]; then
	for args in "info $store" "log $store" "show $store latest" "verify $store" "--version" \
		"--help" "info --help" "export --help" "ls $store" "cat $store run.json" \
		"export $store best --format pt -o -"; do
		# shellcheck disable=SC2086
		$CKPT $args >/dev/full 2>"$tmp/err"
		rc=$?
		[ $rc -eq 1 ] || fail "ckpt $args >/dev/full: exit $rc, expected 1"
		[ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "^ckpt: error: .*\(cannot \)\?writ.*No space left" "$tmp/err" ||
			fail "ckpt $args >/dev/full: $(cat "$tmp/err")"
	done
	# a command that changed something says its work stands when only its report was lost
	$CKPT backup "$store" "$tmp/full-backup" >/dev/full 2>"$tmp/err"
	rc=$?
	[ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
		grep -q "^ckpt: error: cannot write the output to stdout (No space left on device); the backup itself was made$" "$tmp/err" ||
		fail "ckpt backup >/dev/full: exit $rc, $(cat "$tmp/err")"
	$CKPT verify "$tmp/full-backup" >/dev/null || fail "the backup made with stdout on /dev/full"
fi
run $CKPT info --bogus "$store"
[ $rc -eq 2 ] || fail "unknown option: exit $rc"

# newer schema
cp -r "$store" "$tmp/newer"
rm -f "$tmp/newer/lock.mdb"
$FIX schema "$tmp/newer" 99 || fail "fixture schema"
expect_error 1 "newer" $CKPT info "$tmp/newer"

# an empty store: latest/best none, and best/latest specs fail cleanly
$FIX create "$tmp/none" 0 || fail "fixture empty"
run $CKPT info "$tmp/none"
grep -qxF 'best: none' <<<"$out" && grep -qxF 'checkpoints: 0' <<<"$out" || fail "empty info: $out"
grep -qxF 'best-value: none' <<<"$out" || fail "empty info lacks 'best-value: none': $out"
expect_error 1 "no checkpoint" $CKPT show "$tmp/none" best
expect_error 1 "no checkpoint" $CKPT show "$tmp/none" latest

# a read-only copy can be read (and not gc'ed unless root)
cp -r "$store" "$tmp/ro"
rm -f "$tmp/ro/lock.mdb"
chmod 0555 "$tmp/ro"
run $CKPT log "$tmp/ro"
[ $rc -eq 0 ] || fail "log of a read-only store: $err"
if [ "$(id -u)" -ne 0 ]; then
	expect_error 1 "read-only|Permission denied" $CKPT gc "$tmp/ro" --keep-last 1
fi
chmod 0755 "$tmp/ro"

# read-only commands create and change no file of the store: with no lock.mdb (a copy of
# data.mdb alone) none appears; data.mdb and the directory keep their size and times
state() { stat -c '%n %s %Y.%y %Z' "$1" "$1"/*; }
readers=("info" "log" "verify" "show STORE latest" "show STORE best" "ls STORE epoch-0002"
	"cat STORE epoch-0002/model.safetensors" "export STORE best --format pt -o -")
cp -r "$store" "$tmp/nolock"
rm -f "$tmp/nolock/lock.mdb"
before=$(state "$tmp/nolock")
for r in "${readers[@]}"; do
	args=${r//STORE/$tmp/nolock}
	[ "$args" = "$r" ] && args="$r $tmp/nolock"
	# shellcheck disable=SC2086
	$CKPT $args >/dev/null 2>"$tmp/err" || fail "ckpt $r on a store without lock.mdb: $(cat "$tmp/err")"
done
[ "$before" = "$(state "$tmp/nolock")" ] ||
	fail "read-only commands changed the store: $(diff <(echo "$before") <(state "$tmp/nolock"))"

# read-only media as a user who cannot write anything there (chmod -R a-w), with and without
# lock.mdb: every read command works and nothing changes
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && id nobody >/dev/null 2>&1; then
	as_user=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups)
	media=$(mktemp -d /tmp/ckpt-romedia.XXXXXX)
	chmod 0755 "$media"
	cp -r "$store" "$media/withlock" && cp -r "$store" "$media/nolock" && rm -f "$media/nolock/lock.mdb"
	chmod -R a-w "$media/withlock" "$media/nolock"
	for d in withlock nolock; do
		before=$(state "$media/$d")
		for r in "${readers[@]}"; do
			args=${r//STORE/$media/$d}
			[ "$args" = "$r" ] && args="$r $media/$d"
			# shellcheck disable=SC2086
			"${as_user[@]}" $CKPT $args >/dev/null 2>"$tmp/err" ||
				fail "ckpt $r as nobody on read-only media ($d): $(cat "$tmp/err")"
		done
		expect_error 1 "read-only|Permission denied" "${as_user[@]}" $CKPT gc "$media/$d" --keep-last 1
		[ "$before" = "$(state "$media/$d")" ] || fail "reading read-only media ($d) changed it"
	done
	chmod -R u+w "$media" && rm -rf "$media"
else
	echo "test_cli_store: read-only media as another user skipped (needs root, setpriv, nobody)"
fi

# ---- gc ----
before=$(cksum <"$store/data.mdb")
run $CKPT gc "$store" --keep-last 1 --keep-top 1
[ $rc -eq 0 ] && grep -q '^gc: deleted 3 checkpoint' <<<"$out" || fail "gc: $rc $out $err"
run $CKPT log "$store"
[ "$(tail -n +2 <<<"$out" | awk '{print $1}' | tr '\n' ' ')" = "epoch-0002 epoch-0005 " ] ||
	fail "gc kept the wrong epochs: $out"
run $CKPT info "$store"
grep -qxF 'keep-last: 1' <<<"$out" && grep -qxF 'keep-top: 1' <<<"$out" || fail "gc settings"
grep -qxF 'checkpoints: 2' <<<"$out" || fail "gc: checkpoints"
run $CKPT gc "$store"
[ $rc -eq 0 ] && grep -q '^gc: deleted 0' <<<"$out" || fail "gc with stored settings: $out"
[ "$before" != "$(cksum <"$store/data.mdb")" ] || fail "gc did not change the store"
run $CKPT verify "$store"
[ $rc -eq 0 ] || fail "verify after gc: $err"

# ---- verify finds damage and names the tensor ----
$FIX corrupt "$store" 5 fc1.weight || fail "fixture corrupt"
run $CKPT verify "$store"
[ $rc -eq 1 ] || fail "verify of a damaged store: exit $rc"
grep -q 'epoch-0005: bad tensor fc1.weight' <<<"$err" || fail "verify does not name the tensor: $err"
grep -q 'problem' <<<"$out" || fail "verify summary: $out"

# every command's --help describes its exit status (the README says so)
for c in info log show verify gc backup ls cat export; do
	$CKPT $c --help | grep -q "^Exit status: 0" || fail "ckpt $c --help says nothing of its exit status"
done

if [ $fails -ne 0 ]; then
	echo "test_cli_store: $fails failure(s)" >&2
	exit 1
fi
echo "test_cli_store: ok"
