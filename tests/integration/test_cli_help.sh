#!/usr/bin/env bash
# tests/integration/test_cli_help.sh - `ckpt help` prints what `ckpt --help` prints and
# `ckpt help COMMAND` what `ckpt COMMAND --help` prints, exit status 0, as git users expect (it
# was "unknown command 'help'"); `ckpt help` of an unknown command is the usual one-line usage
# error, exit status 2. As for every command, --help may come before or after COMMAND and `--`
# ends the options (`ckpt help -- info` and `ckpt help info --help` were usage errors, and
# `ckpt help --` an unknown command '--').
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_built "$CKPT"

# run CMD...: its stdout, stderr and exit status in $WORK/out, $WORK/err, $rc
run() {
	"$@" >"$WORK/out" 2>"$WORK/err"
	rc=$?
}

run "$CKPT" help
[ $rc -eq 0 ] && [ ! -s "$WORK/err" ] || fail "ckpt help: rc $rc, $(cat "$WORK/err")"
"$CKPT" --help | cmp -s - "$WORK/out" || fail "ckpt help differs from ckpt --help: $(cat "$WORK/out")"
grep -qF "ckpt help COMMAND" "$WORK/out" || fail "ckpt --help does not name ckpt help COMMAND"
run "$CKPT" help help
[ $rc -eq 0 ] && "$CKPT" --help | cmp -s - "$WORK/out" || fail "ckpt help help: rc $rc, $(cat "$WORK/err")"

commands=$(sed -n 's/^  ckpt \([a-z]*\) .*/\1/p' "$WORK/out")
[ "$(wc -w <<<"$commands")" -ge 9 ] || fail "ckpt --help lists only: $commands"
for c in $commands; do
	run "$CKPT" help "$c"
	[ $rc -eq 0 ] && [ ! -s "$WORK/err" ] || fail "ckpt help $c: rc $rc, $(cat "$WORK/err")"
	grep -q "^usage: ckpt $c" "$WORK/out" || fail "ckpt help $c: $(cat "$WORK/out")"
	"$CKPT" "$c" --help | cmp -s - "$WORK/out" || fail "ckpt help $c differs from ckpt $c --help"
done

# as for every command, --help may come before or after COMMAND and `--` ends the options
for args in "-- info" "info --help" "--help info" "-h info" "info --"; do
	run "$CKPT" help $args
	[ $rc -eq 0 ] && [ ! -s "$WORK/err" ] || fail "ckpt help $args: rc $rc, $(cat "$WORK/err")"
	"$CKPT" info --help | cmp -s - "$WORK/out" ||
		fail "ckpt help $args: $(head -n 1 "$WORK/out")"
done
for args in "--" "--help" "-- help" "help --help"; do
	run "$CKPT" help $args
	[ $rc -eq 0 ] && "$CKPT" --help | cmp -s - "$WORK/out" ||
		fail "ckpt help $args: rc $rc, $(cat "$WORK/err")"
done

# usage errors: one line, exit status 2, nothing on stdout
expect_usage_error() { # expect_usage_error TEXT ARG...: ckpt help ARG... fails naming TEXT
	local text=$1
	shift
	run "$CKPT" help "$@"
	[ $rc -eq 2 ] || fail "ckpt help $*: exit status $rc, not 2"
	[ ! -s "$WORK/out" ] || fail "ckpt help $*: printed to stdout: $(cat "$WORK/out")"
	[ "$(wc -l <"$WORK/err")" -eq 1 ] && grep -qF "$text" "$WORK/err" ||
		fail "ckpt help $*: $(cat "$WORK/err")"
}
expect_usage_error "ckpt: error: unknown command 'nosuch' (try 'ckpt --help')" nosuch
expect_usage_error "unknown command ''" ''
expect_usage_error "help: expected 0 to 1 arguments, got 2" info log
expect_usage_error "help: expected 0 to 1 arguments, got 2" -- info --
expect_usage_error "unknown command '--help'" -- --help
expect_usage_error "help: unknown option '--verbose' (usage: ckpt help [COMMAND])" --verbose info

# help output that cannot be written is an error, as for --help
if [ -w /dev/full ]; then
	"$CKPT" help info >/dev/full 2>"$WORK/err"
	rc=$?
	[ $rc -eq 1 ] && grep -q "cannot write the output" "$WORK/err" ||
		fail "ckpt help info >/dev/full: rc $rc, $(cat "$WORK/err")"
fi
echo "test_cli_help: ok"
