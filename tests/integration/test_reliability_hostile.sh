#!/usr/bin/env bash
# tests/integration/test_reliability_hostile.sh - the hostile-input catalogue of tests/README.md,
# executed: every row of its table between the hostile-begin/hostile-end markers is a command
# run against prepared fixtures, with its exit status and a string its stderr must contain.
# Every row must also: not die of a signal, leave $NEW uncreated, and leave no mount at $MNT;
# the rows leave $STORE and the backup destinations as they were, and a second ckptfs leaves the
# live mount at $MOUNTED serving (rows on $MOUNTED are skipped where FUSE is unusable).
# Then the security model: the default mount is read-only (also with -o rw), other users
# cannot enter it, every write-like call fails with EROFS, links stay inside the mount.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/mount_lib.sh"
README=$HERE/../README.md
[ -r "$README" ] || fail "tests/README.md is missing"
FIX=$TOOLS/store_fixture
[ -x "$FIX" ] || fail "build/tests/tools/store_fixture is missing"
# CKPT_BIN_DIR: test other builds of the programs (e.g. sanitized ones)
BIN=${CKPT_BIN_DIR:-$BIN}
mkdir -p "$TMP/bin" && cp "$BIN/ckpt" "$BIN/ckpt-train" "$BIN/ckptfs" "$TMP/bin/" || fail "copy binaries"
PATH=$TMP/bin:$PATH

# ---- fixtures (the names the table uses)
STORE=$TMP/store EMPTY=$TMP/empty FILE=$TMP/file NOTHING=$TMP/nothing NEW=$TMP/new MNT=$TMP/mnt
CORRUPT=$TMP/corrupt GARBAGE=$TMP/garbage TRUNC=$TMP/trunc SCHEMA=$TMP/schema
DATALINK=$TMP/datalink LOCKLINK=$TMP/locklink TRAINED=$TMP/trained DAMAGED=$TMP/damaged D=$TMP/data
VICTIM=$TMP/victim NONEMPTY=$TMP/nonempty MOUNTED=$TMP/mounted
"$FIX" create "$STORE" 3 >/dev/null || fail "store_fixture create"
mkdir "$EMPTY" "$MNT" "$D" "$NONEMPTY"
echo "not a store" >"$FILE"
echo "keep" >"$NONEMPTY/keep"
echo "precious" >"$VICTIM"
cp -r "$STORE" "$CORRUPT" && "$FIX" corrupt "$CORRUPT" 2 fc1.weight >/dev/null || fail "corrupt fixture"
cp -r "$STORE" "$GARBAGE" && head -c 65536 /dev/urandom >"$GARBAGE/data.mdb"
cp -r "$STORE" "$TRUNC" && truncate -s 8192 "$TRUNC/data.mdb"
cp -r "$STORE" "$SCHEMA" && "$FIX" schema "$SCHEMA" 2 >/dev/null || fail "schema fixture"
mkdir "$DATALINK" && ln -s "$STORE/data.mdb" "$DATALINK/data.mdb"
cp -r "$STORE" "$LOCKLINK" && rm -f "$LOCKLINK/lock.mdb" && ln -s "$VICTIM" "$LOCKLINK/lock.mdb"
ckpt-train --store "$TRAINED" --data synthetic --layers 784,16,10 --epochs 2 --threads 1 --quiet ||
	fail "ckpt-train fixture"
cp -r "$TRAINED" "$DAMAGED"
ckpt cat "$TRAINED" epoch-0002/model/fc1.weight.npy >"$TMP/w.npy" &&
	python3 "$HERE/../reliability/corrupt.py" tensor "$DAMAGED/data.mdb" "$TMP/w.npy" >/dev/null ||
	fail "damaged fixture"
python3 - "$D" <<'PY' || fail "data fixtures"
import struct, sys
d = sys.argv[1]
def w(p, b):
    import os
    os.makedirs(os.path.dirname(f"{d}/{p}"), exist_ok=True)
    open(f"{d}/{p}", "wb").write(b)
w("badmagic/train-images-idx3-ubyte", struct.pack(">IIII", 0x801, 2, 2, 2) + bytes(8))
w("badmagic/train-labels-idx1-ubyte", struct.pack(">II", 0x801, 2) + bytes(2))
w("trunc/train-images-idx3-ubyte", struct.pack(">IIII", 0x803, 100, 28, 28) + bytes(50))
w("trunc/train-labels-idx1-ubyte", struct.pack(">II", 0x801, 100) + bytes(100))
w("huge/train-images-idx3-ubyte", struct.pack(">IIII", 0x803, 65536, 512, 512) + bytes(64))
w("huge/train-labels-idx1-ubyte", struct.pack(">II", 0x801, 65536) + bytes(64))
w("dims/train-images-idx3-ubyte", struct.pack(">IIII", 0x803, 0, 28, 28))
w("dims/train-labels-idx1-ubyte", struct.pack(">II", 0x801, 0))
w("gzbad/train-images-idx3-ubyte.gz", b"\x1f\x8b\x08\x00garbage-not-deflate")
w("gzbad/train-labels-idx1-ubyte", struct.pack(">II", 0x801, 2) + bytes(2))
w("text.csv", b"label,a,b\n1,x,3\n")
w("range.csv", b"1,300,2\n")
w("label.csv", b"7,1,2\n")
w("fields.csv", b"1,2\n")
w("empty.csv", b"")
w("nul.csv", b"1,2\x00,3\n")
# IDX sets of 2 x 2 images, labels 0..3 (--layers 4,4), gzipped and plain
import gzip
def gz(p, b):
    w(p, gzip.compress(b))
def images(n, side=2):
    return struct.pack(">IIII", 0x803, n, side, side) + bytes(i * 7 % 256 for i in range(n * side * side))
def labels(n, values=None):
    return struct.pack(">II", 0x801, n) + bytes(values if values is not None else [i % 4 for i in range(n)])
gz("idx/train-images-idx3-ubyte.gz", images(8))
w("idx/train-labels-idx1-ubyte", labels(8))
w("idx/t10k-images-idx3-ubyte", images(4))
gz("idx/t10k-labels-idx1-ubyte.gz", labels(4))
w("badlabel/train-images-idx3-ubyte", images(8))
w("badlabel/train-labels-idx1-ubyte", labels(8, [0, 1, 2, 3, 0, 1, 9, 3]))
w("count/train-images-idx3-ubyte", images(8))
gz("count/train-labels-idx1-ubyte.gz", labels(6))
gz("shape/train-images-idx3-ubyte.gz", images(8))
w("shape/train-labels-idx1-ubyte", labels(8))
w("shape/t10k-images-idx3-ubyte", images(4, 3))
w("shape/t10k-labels-idx1-ubyte", labels(4))
PY
# a live mount, for the rows that mount onto it again ($MOUNTED); without FUSE they are skipped
mounted=0
if ! fuse_unusable >/dev/null; then
	mount_store "$STORE" "$MOUNTED"
	mounted=1
fi

# ---- the catalogue
rows=$(awk '/<!-- hostile-begin -->/ { on = 1; next } /<!-- hostile-end -->/ { on = 0 } on && /^\| [A-Z][0-9]/' "$README")
[ "$(wc -l <<<"$rows")" -ge 40 ] || fail "the catalogue in tests/README.md has fewer than 40 rows"
n=0 bad=0 skipped=0
while IFS= read -r row; do
	id=$(awk -F' [|] ' '{ sub(/^[|] /, ""); print $1 }' <<<"$row")
	cmd=$(sed -E 's/^[^`]*`([^`]*)`.*/\1/' <<<"$row")
	if [ $mounted -eq 0 ] && [[ $cmd == *'$MOUNTED'* ]]; then
		skipped=$((skipped + 1))
		continue
	fi
	want_rc=$(awk -F' [|] ' '{ print $4 }' <<<"$row" | tr -d ' ')
	needle=$(sed -E 's/.*`([^`]*)` [|]$/\1/' <<<"$row")
	n=$((n + 1))
	rm -rf "$NEW"
	eval "timeout 30 $cmd" >"$TMP/out" 2>"$TMP/err" </dev/null
	rc=$?
	why=""
	if [ "$rc" != "$want_rc" ]; then
		why="exit $rc, expected $want_rc"
	elif ! grep -qF -- "$(eval "echo \"$needle\"")" "$TMP/err"; then
		why="stderr lacks '$needle'"
	elif [ -e "$NEW" ]; then
		why="$NEW was written"
	elif is_mounted "$MNT"; then
		fusermount3 -u "$MNT"
		why="left a mount"
	elif [ "$(cat "$VICTIM")" != precious ]; then
		why="the symlink target was modified"
	fi
	if [ -n "$why" ]; then
		bad=$((bad + 1))
		echo "FAIL $id: $cmd: $why; stderr: $(head -c 400 "$TMP/err")"
	fi
done <<<"$rows"
echo "hostile inputs: $n catalogue rows, $bad failed"
[ $skipped -eq 0 ] || echo "hostile inputs: $skipped rows on \$MOUNTED skipped: $(fuse_unusable)"
[ $bad -eq 0 ] || exit 1
[ "$(ls -A "$STORE" | tr '\n' ' ')" = "data.mdb lock.mdb " ] || fail "a row left files in \$STORE: $(ls -A "$STORE")"
[ "$(ls -A "$NONEMPTY")" = keep ] && [ "$(cat "$FILE")" = "not a store" ] ||
	fail "a refused backup changed its destination"
if [ $mounted -eq 1 ]; then
	[ -L "$MOUNTED/latest" ] || fail "the mount at \$MOUNTED stopped serving after the rows mounting onto it"
	unmount_store "$MOUNTED"
fi

# ---- security model of the mount
require_fuse
mount_store "$STORE" "$MNT" -o rw
opts=$(awk -v m="$MNT" '$2 == m { print $4 }' /proc/self/mounts)
[[ ",$opts," == *,ro,* ]] || fail "mounted with -o rw the mount is not read-only: $opts"
[[ ",$opts," == *,allow_other,* ]] && fail "the default mount has allow_other"
[[ ",$opts," == *,nosuid,* && ",$opts," == *,nodev,* ]] || fail "mount lacks nosuid/nodev: $opts"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	chmod 755 "$TMP"
	setpriv --reuid=65534 --regid=65534 --clear-groups ls "$MNT" >/dev/null 2>&1 &&
		fail "another user can list the mount (no allow_other given)"
	setpriv --reuid=65534 --regid=65534 --clear-groups cat "$MNT/run.json" >/dev/null 2>&1 &&
		fail "another user can read the mount"
	chmod 700 "$TMP"
fi
for op in "touch $MNT/x" "mkdir $MNT/d" "rm -f $MNT/run.json" "chmod 777 $MNT/run.json" \
	"ln -s /etc $MNT/etc" "mv $MNT/run.json $MNT/r" "truncate -s 0 $MNT/run.json" \
	"rmdir $MNT/epoch-0001" "cp $FILE $MNT/epoch-0001/model/" "ln $MNT/run.json $MNT/hard"; do
	$op 2>"$TMP/err" && fail "'$op' succeeded on the mount"
	grep -q "Read-only file system" "$TMP/err" || fail "'$op': expected EROFS, got: $(cat "$TMP/err")"
done
python3 - "$MNT" <<'PY' || fail "writing through open()/O_RDWR was not refused with EROFS"
import errno, os, sys
for flags in (os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND):
    try:
        os.open(os.path.join(sys.argv[1], "epoch-0001/metrics.json"), flags)
    except OSError as e:
        assert e.errno == errno.EROFS, e
    else:
        raise SystemExit("opened for writing")
PY
for l in best latest; do
	t=$(readlink "$MNT/$l") || fail "readlink $l"
	[[ $t == epoch-* && $t != */* ]] || fail "$l points at '$t'"
done
[ "$(stat -c %a "$MNT/run.json")" = 444 ] && [ "$(stat -c %a "$MNT/epoch-0001")" = 555 ] ||
	fail "modes are not 0444/0555"
[ ! -e "$MNT/../$(basename "$STORE")/data.mdb" ] || [ "$(cd "$MNT/.." && pwd)" = "$TMP" ] ||
	fail "'..' of the mount is not its parent"
unmount_store "$MNT"
echo "test_reliability_hostile: ok ($n catalogue rows, security model)"
