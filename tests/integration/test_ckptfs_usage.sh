#!/usr/bin/env bash
# tests/integration/test_ckptfs_usage.sh - ckptfs judges every option before the store and the
# mountpoint: a bad option is a usage error (exit 2) naming it even when the store or the
# mountpoint is missing too; a missing mountpoint with good options stays exit 1.
#
# Nothing is mounted: each command fails before mounting.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_built "$CKPTFS"

check_error() { # exit-status expected-text args...
	local want_rc=$1 want=$2
	shift 2
	local out rc
	out=$(cd "$WORK" && "$CKPTFS" "$@" 2>&1)
	rc=$?
	[ $rc -eq "$want_rc" ] || fail "ckptfs $*: exit $rc, expected $want_rc: $out"
	grep -q -- "$want" <<<"$out" || fail "ckptfs $*: expected '$want', got: $out"
	[ "$(wc -l <<<"$out")" -eq 1 ] || fail "ckptfs $*: more than one line: $out"
}
mkdir -p "$WORK/store" "$WORK/mnt"
check_error 2 "bad map_location 'gpu'" store nomnt -o map_location=gpu
check_error 2 "bad map_location 'gpu'" nostore nomnt -o map_location=gpu
check_error 2 "unknown option(s): .-o bogus" nostore nomnt -o bogus
check_error 2 "unknown option(s): .-o bogus" store nomnt -o bogus
check_error 2 "invalid parameter in option .max_threads=abc" nostore nomnt -o max_threads=abc
check_error 2 "snapshot_idle=abc: expected a whole number" nostore nomnt -o snapshot_idle=abc
check_error 2 "invalid argument .extra" nostore nomnt extra
check_error 2 "-o fsname: needs a name" nostore nomnt -o fsname=
# the option error is the same whichever of store and mountpoint exists
check_error 2 "unknown option(s): .-o bogus" nostore mnt -o bogus
# good options: the missing mountpoint is said, exit 1
check_error 1 "^ckptfs: error: mountpoint nomnt: No such file or directory$" nostore nomnt
check_error 1 "^ckptfs: error: mountpoint nomnt: No such file or directory$" store nomnt -o map_location=cpu
echo "PASS test_ckptfs_usage"
