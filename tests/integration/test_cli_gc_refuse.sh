#!/usr/bin/env bash
# tests/integration/test_cli_gc_refuse.sh - `ckpt gc` and `ckpt gc --compact` refuse what a
# read-only open refuses (a store of a newer schema, one whose run record fails its CRC, an
# LMDB directory that is not a ckpt store) in one line, exit 1, and change nothing on disk: no
# lock.mdb appears, data.mdb keeps its bytes.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
FIX=$TOOLS/store_fixture
need_built "$CKPT" "$FIX"
command -v mdb_dump >/dev/null && command -v mdb_load >/dev/null || skip "mdb_dump/mdb_load missing (lmdb-utils)"

# a fixture store of 3 checkpoints, without lock.mdb
make_store() {
	"$FIX" create "$1" 3 >/dev/null || fail "store_fixture create $1"
	rm -f "$1/lock.mdb"
}

make_store "$WORK/newer"
"$FIX" schema "$WORK/newer" 99 || fail "store_fixture schema"
rm -f "$WORK/newer/lock.mdb"

# the run record with its last byte (part of the CRC-32 trailer) changed
make_store "$WORK/damaged"
mdb_dump -s meta "$WORK/damaged" >"$WORK/meta.dump" || fail "mdb_dump"
awk 'prev == " 72756e" { $0 = substr($0, 1, length($0) - 1) (substr($0, length($0)) == "0" ? "1" : "0") }
	!/^db_pagesize=/ { print } { prev = $0 }' "$WORK/meta.dump" >"$WORK/meta.bad"
! cmp -s "$WORK/meta.dump" "$WORK/meta.bad" || fail "the run record was not found in the dump"
mdb_load -s meta -f "$WORK/meta.bad" "$WORK/damaged" || fail "mdb_load"
rm -f "$WORK/damaged/lock.mdb"

# an LMDB environment with a database of its own, no "meta"
mkdir "$WORK/plain"
printf 'VERSION=3\nformat=print\ntype=btree\nHEADER=END\n key\n value\nDATA=END\n' |
	mdb_load -s other "$WORK/plain" || fail "mdb_load of a plain environment"
rm -f "$WORK/plain/lock.mdb"

state() { ls -A "$1" && md5sum <"$1/data.mdb"; }
for c in "newer:newer" "damaged:damaged" "plain:not a ckpt store"; do
	name=${c%%:*} want=${c#*:}
	store=$WORK/$name
	before=$(state "$store")
	for opts in "" "--compact" "--keep-last 1 --compact" "--keep-last 1"; do
		# shellcheck disable=SC2086
		"$CKPT" gc "$store" $opts >"$WORK/out" 2>"$WORK/err"
		rc=$?
		[ "$rc" -eq 1 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] && grep -q "^ckpt: error: .*$want" "$WORK/err" ||
			fail "gc $opts of the $name store: exit $rc, want 1 and one line naming '$want': $(cat "$WORK/err")"
		[ ! -s "$WORK/out" ] || fail "gc $opts of the $name store printed: $(cat "$WORK/out")"
		[ "$(state "$store")" = "$before" ] ||
			fail "a refused gc $opts changed the $name store: $(diff <(echo "$before") <(state "$store"))"
	done
done

echo "test_cli_gc_refuse: ok"
