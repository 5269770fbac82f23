#!/usr/bin/env bash
# tests/integration/test_store_replaced_data.sh - a store restored by moving a backup's data.mdb
# over the old one while another process (a ckptfs mount, a program using libckpt) still holds
# the old one open. lock.mdb then keeps the old file's transaction id, and LMDB reads the new
# file's meta page of that id's parity: with one parity the store read as "not a ckpt store",
# with the other every command read it and each commit into it flipped what the mount showed.
# For an old store of 6 and of 7 commits, held by a libckpt program and (where FUSE works) by a
# mount: every ckpt command, ckpt-train --resume, ckpt-train into it anew and a new mount refuse
# in one line naming the holder, exit 1 and change nothing; once the holder ends the store is
# the backup's, verifies and trains on. Also: 200 and more opens while ckpt-train commits are
# never refused; a copy of the store as it was (lock.mdb's ids fit it) is refused as well,
# told by the holder's maps. Exit 0 pass, 77 skip.
. "$(dirname "$0")/mount_lib.sh"
[ -x "$BIN/ckpt" ] && [ -x "$BIN/ckpt-train" ] && [ -f "$ROOT/build/lib/libckpt.so" ] ||
	{ echo "SKIP: build/bin/ckpt, ckpt-train or build/lib/libckpt.so not built (run make)"; exit 77; }
CKPT=$BIN/ckpt
TRAIN=$BIN/ckpt-train
train() { "$TRAIN" --data synthetic --layers 784,16,10 --no-sync --quiet --threads 1 "$@"; }

# hold.py STORE READY: opens STORE read-only through libckpt, creates READY, and keeps the
# store open until READY is removed
cat >"$TMP/hold.py" <<'EOF'
import ctypes, os, sys, time
lib = ctypes.CDLL(os.environ["LIBCKPT"])
lib.ckpt_last_error.restype = ctypes.c_char_p
store = ctypes.c_void_p()
if lib.ckpt_store_open(ctypes.byref(store), sys.argv[1].encode(), 1) != 0:
    sys.exit("hold: " + lib.ckpt_last_error().decode())
open(sys.argv[2], "w").close()
while os.path.exists(sys.argv[2]):
    time.sleep(0.02)
lib.ckpt_store_close(store)
EOF
export LIBCKPT=$ROOT/build/lib/libckpt.so

train --store "$TMP/new" --epochs 3 --keep-last 3 || fail "training the store to restore"
"$CKPT" backup "$TMP/new" "$TMP/backup" >/dev/null || fail "ckpt backup"
"$CKPT" log "$TMP/backup" >"$TMP/backup.log" || fail "ckpt log of the backup"

holder=
release() {
	if [ "$2" = mount ]; then
		unmount_store "$1"
	else
		rm -f "$1"
		wait "$holder" || fail "the holder failed"
	fi
	holder=
}

# refused WHAT CMD...: CMD exits 1 with one line on stderr naming the replaced data.mdb and the
# holder, prints nothing else, and leaves the store's files as they were
refused() {
	local what=$1 rc
	shift
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ $rc -eq 1 ] || fail "$what: exit $rc, not 1 (stderr: $(cat "$TMP/err"))"
	[ ! -s "$TMP/out" ] || fail "$what printed: $(head -c 300 "$TMP/out")"
	[ "$(wc -l <"$TMP/err")" -eq 1 ] || fail "$what: not one line: $(cat "$TMP/err")"
	local want="data.mdb was replaced while pid $holder (.*) had the store open"
	want+=".*unmount or stop it, then open the store again"
	grep -q "$want" "$TMP/err" ||
		fail "$what: $(cat "$TMP/err")"
	[ "$(sha256sum <"$store/data.mdb")" = "$sum" ] || fail "$what changed data.mdb"
	[ "$(ls -A "$store")" = "$files" ] || fail "$what left files: $(ls -A "$store")"
}

# one_case EPOCHS HOLDER: an old store of EPOCHS commits held by HOLDER (lib or mount) while
# the backup's data.mdb is moved over its own
one_case() {
	local epochs=$1 how=$2 ready
	store=$TMP/store-$epochs-$how
	rm -rf "$store" "$TMP/m2" "$TMP/bk" "$TMP/x.safetensors"
	train --store "$store" --epochs "$epochs" --keep-last 3 || fail "training $store"
	if command -v mdb_stat >/dev/null; then
		eval "txnid_$epochs=$(mdb_stat -e "$store" | sed -n 's/^ *Last transaction ID: //p')"
	fi
	if [ "$how" = mount ]; then
		ready=$TMP/mnt-$epochs
		mount_store "$store" "$ready"
		holder=${PIDS[${#PIDS[@]} - 1]}
		[ -f "$ready/run.json" ] || fail "the mount of $store shows no run.json"
	else
		ready=$TMP/ready
		"$PY" "$TMP/hold.py" "$store" "$ready" &
		holder=$!
		wait_for_file "$ready"
	fi
	cp "$TMP/backup/data.mdb" "$store/data.mdb.new" && mv "$store/data.mdb.new" "$store/data.mdb" ||
		fail "moving the backup in"
	sum=$(sha256sum <"$store/data.mdb")
	files=$(ls -A "$store")
	local c="$epochs commits, held by $how"
	refused "ckpt info ($c)" "$CKPT" info "$store"
	refused "ckpt log ($c)" "$CKPT" log "$store"
	refused "ckpt show ($c)" "$CKPT" show "$store" latest
	refused "ckpt verify ($c)" "$CKPT" verify "$store"
	refused "ckpt ls ($c)" "$CKPT" ls "$store"
	refused "ckpt cat ($c)" "$CKPT" cat "$store" run.json
	refused "ckpt export ($c)" "$CKPT" export "$store" latest --format safetensors \
		-o "$TMP/x.safetensors"
	[ ! -e "$TMP/x.safetensors" ] || fail "ckpt export ($c) wrote its file"
	refused "ckpt backup ($c)" "$CKPT" backup "$store" "$TMP/bk"
	[ ! -e "$TMP/bk" ] || fail "ckpt backup ($c) made its destination"
	refused "ckpt gc ($c)" "$CKPT" gc "$store" --keep-last 1
	refused "ckpt gc --compact ($c)" "$CKPT" gc "$store" --compact
	refused "ckpt-train --resume ($c)" train --store "$store" --resume --epochs 9
	refused "ckpt-train into it anew ($c)" train --store "$store" --epochs 2
	if [ -z "$(fuse_unusable)" ]; then
		mkdir -p "$TMP/m2"
		refused "a new mount ($c)" "$BIN/ckptfs" "$store" "$TMP/m2"
		is_mounted "$TMP/m2" && fail "a new mount ($c) mounted"
	fi
	release "$ready" "$how"
	"$CKPT" log "$store" >"$TMP/log" 2>&1 ||
		fail "ckpt log after the holder ended ($c): $(cat "$TMP/log")"
	cmp -s "$TMP/log" "$TMP/backup.log" ||
		fail "after the holder ended ($c) the store is not the backup: $(cat "$TMP/log")"
	"$CKPT" verify "$store" >/dev/null || fail "ckpt verify after the holder ended ($c)"
	train --store "$store" --resume --epochs 4 ||
		fail "ckpt-train --resume after the holder ended ($c)"
	"$CKPT" info "$store" | grep -q '^latest: epoch-0004' || fail "no epoch 4 after the resume ($c)"
}

wait_for_file() {
	for _ in $(seq 1 400); do
		[ -e "$1" ] && return 0
		kill -0 "$holder" 2>/dev/null || fail "the holder ended before it opened the store"
		sleep 0.05
	done
	fail "the holder did not open the store within 20 s"
}

one_case 6 lib
one_case 7 lib
if [ -n "${txnid_6:-}" ] && [ $((txnid_6 % 2)) -eq $((txnid_7 % 2)) ]; then
	fail "the old stores' transaction ids ($txnid_6, $txnid_7) have the same parity: change the epochs"
fi
if why=$(fuse_unusable); then
	echo "note: no mount held the store ($why)"
else
	one_case 6 mount
	one_case 7 mount
fi

# a copy of the store as it was (the ids in lock.mdb fit it) moved in under a holder: the
# holder's maps tell; it is refused, and a commit into it (which would flip the holder's view
# of the old file) cannot happen
store=$TMP/same-ids ready=$TMP/ready
# copy_in_under_holder PATH: a holder opens the store by PATH, then a copy of data.mdb as it is
# is moved over it
copy_in_under_holder() {
	cp "$store/data.mdb" "$TMP/same-ids.copy" || fail "cp"
	"$PY" "$TMP/hold.py" "$1" "$ready" &
	holder=$!
	wait_for_file "$ready"
	mv "$TMP/same-ids.copy" "$store/data.mdb" || fail "moving the copy in"
	sum=$(sha256sum <"$store/data.mdb")
	files=$(ls -A "$store")
}
train --store "$store" --epochs 5 --keep-last 3 || fail "training $store"
copy_in_under_holder "$store"
refused "ckpt info (a copy with the same ids)" "$CKPT" info "$store"
refused "ckpt-train --resume (a copy with the same ids)" train --store "$store" --resume --epochs 6
release "$ready" lib
train --store "$store" --resume --epochs 6 || fail "ckpt-train --resume after the holder ended"
# the same, the holder having opened the store through a bind mount (another path to the same
# directory): told by the directory's device and inode, not its path
trap 'umount "$TMP/bind" 2>/dev/null; cleanup' EXIT
if [ "$(id -u)" = 0 ] && mkdir -p "$TMP/bind" && mount --bind "$TMP" "$TMP/bind" 2>/dev/null; then
	copy_in_under_holder "$TMP/bind/same-ids"
	refused "ckpt info (a copy with the same ids, held through a bind mount)" "$CKPT" info "$store"
	release "$ready" lib
	umount "$TMP/bind" || fail "umount $TMP/bind"
	"$CKPT" verify "$store" >/dev/null || fail "ckpt verify after the bind-mounted holder ended"
else
	echo "note: not root or no bind mount here: the bind-mounted holder is not tried"
fi

# opens while ckpt-train commits: none refused
store=$TMP/busy
train --store "$store" --epochs 1 --keep-last 2 || fail "training $store"
train --store "$store" --resume --epochs 80 --keep-last 2 2>"$TMP/train.err" &
trainer=$!
"$PY" - "$store" "$trainer" >"$TMP/opens" <<'EOF'
import ctypes, os, sys
lib = ctypes.CDLL(os.environ["LIBCKPT"])
lib.ckpt_last_error.restype = ctypes.c_char_p
opens = during = 0
while True:
    try:  # the trainer may end, and be reaped, between any two looks
        alive = open("/proc/%s/stat" % sys.argv[2]).read().split()[2] != "Z"
    except OSError:
        alive = False
    if not alive and opens >= 200:
        break
    store = ctypes.c_void_p()
    if lib.ckpt_store_open(ctypes.byref(store), sys.argv[1].encode(), 1) != 0:
        print("open %d refused: %s" % (opens, lib.ckpt_last_error().decode()))
        sys.exit(1)
    lib.ckpt_store_close(store)
    opens += 1
    during += alive
print(opens, during)
EOF
[ $? -eq 0 ] || fail "opens while ckpt-train commits: $(cat "$TMP/opens")"
wait "$trainer" || fail "ckpt-train while opened: $(cat "$TMP/train.err")"
read -r opens during <"$TMP/opens"
[ "$during" -ge 200 ] || echo "note: only $during of $opens opens overlapped the training"
"$CKPT" verify "$store" >/dev/null || fail "ckpt verify of $store"
echo "ok: a data.mdb moved in under a holder is refused by every command and opens after;" \
	"$opens opens ($during while ckpt-train committed) never refused"
