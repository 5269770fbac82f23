#!/usr/bin/env bash
# tests/integration/test_security_store_owner.sh - root's commands on a store directory that
# another user can write (tests/README.md, security model): that user may replace data.mdb,
# lock.mdb or a backup's DEST/data.mdb.tmp by links between libckpt's checks and LMDB's open by
# path (made deterministic with CKPT_OPEN_TEST_PAUSE and CKPT_BACKUP_TEST_PAUSE, the replacing
# done as uid 12345 with setpriv). Root then works in that directory with its owner's file
# rights: `ckpt info` does not resize or overwrite a root-only file behind a lock.mdb link,
# `ckpt gc` applies no retention to a root-only store behind a data.mdb link nor to the user's
# other store (the mapped file is not the one checked), `ckpt backup` into the user's DEST
# removes nothing of a root-only store that DEST/data.mdb.tmp was made to point at, and
# `ckpt gc --compact` of the user's store leaves root's files alone. Each refusal is one line;
# a root-owned store directory that others may write (no sticky bit) is refused naming its mode.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
CKPT=$BIN/ckpt
TRAIN=$BIN/ckpt-train
[ -x "$CKPT" ] && [ -x "$TRAIN" ] || fail "build/bin/ckpt or ckpt-train is missing (run make)"
U=12345
skip_unless_root_setpriv test_security_store_owner $U
as_user=(setpriv --reuid=$U --regid=$U --clear-groups)
opts=(--data synthetic --layers 784,8,10 --val-split 200 --threads 1 --no-sync --quiet)

# root's: a store in a root-only directory, and a root-only file
mkdir -m 700 "$TMP/root"
"$TRAIN" --store "$TMP/root/victim" "${opts[@]}" --epochs 3 >"$TMP/train.log" 2>&1 ||
	fail "root's store: $(tail -n 3 "$TMP/train.log")"
"$CKPT" log "$TMP/root/victim" >"$TMP/victim.log" || fail "ckpt log victim"
sum_victim() { sha256sum "$TMP/root/victim/data.mdb" | awk '{print $1}'; }
sum_victim >"$TMP/victim.sum"
head -c 1000 /dev/urandom >"$TMP/root/secret"
chmod 600 "$TMP/root/secret"
cp "$TMP/root/secret" "$TMP/secret.orig"
victim_untouched() {
	cmp -s "$TMP/root/secret" "$TMP/secret.orig" || fail "$1: root's secret file was changed"
	sum_victim | cmp -s - "$TMP/victim.sum" || fail "$1: root's store's files were changed"
	"$CKPT" log "$TMP/root/victim" | cmp -s - "$TMP/victim.log" ||
		fail "$1: root's store lost checkpoints"
}

# the user's: a directory of their own, two stores in it
mkdir "$TMP/pub"
chown $U:$U "$TMP/pub"
user_train() {
	"${as_user[@]}" "$TRAIN" --store "$1" "${opts[@]}" --epochs 3 >"$TMP/train.log" 2>&1 ||
		fail "the user's store $1: $(tail -n 3 "$TMP/train.log")"
}
user_train "$TMP/pub/s"
user_train "$TMP/pub/s2"
"$CKPT" log "$TMP/pub/s2" >"$TMP/s2.log" || fail "ckpt log s2"
PAUSE=$TMP/pub/pause

# start_paused VAR CMD...: CMD in the background (pid in $pid, output in $TMP/out and
# $TMP/err) with VAR=$PAUSE, until it paused there
start_paused() {
	local var=$1 i
	shift
	env "$var=$PAUSE" "$@" >"$TMP/out" 2>"$TMP/err" &
	pid=$!
	for i in $(seq 1 600); do
		[ -e "$PAUSE" ] && return 0
		kill -0 $pid 2>/dev/null || fail "$* did not pause: $(cat "$TMP/err")"
		sleep 0.05
	done
	fail "$* did not pause"
}
# one_line FILE WHAT: a failure said in one line
one_line() {
	[ -n "${SHOW_ERRORS:-}" ] && echo "$2: $(cat "$1")"
	[ "$(wc -l <"$1")" -eq 1 ] || fail "$2: not one line: $(cat "$1")"
}
# exchange NAME TARGET: as the user, NAME in the user's store becomes a link to TARGET
exchange() {
	"${as_user[@]}" bash -c 'ln -s "$2" "$1.link" && mv -T "$1.link" "$1"' _ "$1" "$2" ||
		fail "could not replace $1"
}

# 1. lock.mdb replaced between the checks and LMDB's open: `ckpt info`
start_paused CKPT_OPEN_TEST_PAUSE "$CKPT" info "$TMP/pub/s"
exchange "$TMP/pub/s/lock.mdb" "$TMP/root/secret"
rm -f "$PAUSE"
wait $pid
rc=$?
[ $rc -eq 0 ] || one_line "$TMP/err" "ckpt info, lock.mdb a link"
victim_untouched "ckpt info with lock.mdb a link"
"${as_user[@]}" rm -f "$TMP/pub/s/lock.mdb"

# 2. data.mdb replaced by a link to root's store: `ckpt gc --keep-last 1`
start_paused CKPT_OPEN_TEST_PAUSE "$CKPT" gc "$TMP/pub/s" --keep-last 1
"${as_user[@]}" mv "$TMP/pub/s/data.mdb" "$TMP/pub/s-data.mdb"
exchange "$TMP/pub/s/data.mdb" "$TMP/root/victim/data.mdb"
rm -f "$PAUSE"
wait $pid && fail "ckpt gc through a data.mdb link to root's store succeeded: $(cat "$TMP/out")"
one_line "$TMP/err" "ckpt gc, data.mdb a link to root's store"
grep -q "uid $U" "$TMP/err" || fail "ckpt gc: the error does not name the owner: $(cat "$TMP/err")"
victim_untouched "ckpt gc with data.mdb a link"

# 3. data.mdb replaced by a link to the user's other store: LMDB may open it, the open refuses
"${as_user[@]}" rm -f "$TMP/pub/s/data.mdb" "$TMP/pub/s/lock.mdb"
"${as_user[@]}" cp "$TMP/pub/s-data.mdb" "$TMP/pub/s/data.mdb"
start_paused CKPT_OPEN_TEST_PAUSE "$CKPT" gc "$TMP/pub/s" --keep-last 1
exchange "$TMP/pub/s/data.mdb" "$TMP/pub/s2/data.mdb"
rm -f "$PAUSE"
wait $pid && fail "ckpt gc through a data.mdb link to another store succeeded: $(cat "$TMP/out")"
one_line "$TMP/err" "ckpt gc, data.mdb a link to another store"
"$CKPT" log "$TMP/pub/s2" | cmp -s - "$TMP/s2.log" || fail "ckpt gc changed the other store"
"${as_user[@]}" rm -f "$TMP/pub/s/data.mdb" "$TMP/pub/s/lock.mdb"
"${as_user[@]}" mv "$TMP/pub/s-data.mdb" "$TMP/pub/s/data.mdb"

# 4. `ckpt backup` of root's store into the user's DEST; DEST/data.mdb.tmp becomes a link to
# root's store while the copy is checked
"${as_user[@]}" mkdir "$TMP/pub/dest"
start_paused CKPT_BACKUP_TEST_PAUSE "$CKPT" backup "$TMP/root/victim" "$TMP/pub/dest"
"${as_user[@]}" mv "$TMP/pub/dest/data.mdb.tmp" "$TMP/pub/moved"
exchange "$TMP/pub/dest/data.mdb.tmp" "$TMP/root/victim"
rm -f "$PAUSE"
wait $pid && fail "ckpt backup through a link to root's store succeeded: $(cat "$TMP/out")"
one_line "$TMP/err" "ckpt backup, data.mdb.tmp a link"
victim_untouched "ckpt backup with data.mdb.tmp a link"
[ -e "$TMP/pub/dest/data.mdb" ] && fail "ckpt backup left a data.mdb in DEST"
# the same backup, left alone, is made and is the user's
"${as_user[@]}" rm -rf "$TMP/pub/dest" "$TMP/pub/moved"
"$CKPT" backup "$TMP/root/victim" "$TMP/pub/dest" >"$TMP/out" 2>&1 ||
	fail "ckpt backup into the user's directory: $(cat "$TMP/out")"
[ "$(stat -c %u "$TMP/pub/dest/data.mdb")" = $U ] || fail "the backup is not the user's"
"$CKPT" verify "$TMP/pub/dest" >"$TMP/out" 2>&1 || fail "ckpt verify backup: $(cat "$TMP/out")"
victim_untouched "ckpt backup"

# 5. `ckpt gc --compact` of the user's store, its scratch data.mdb.gc a link to root's store
exchange "$TMP/pub/s/data.mdb.gc" "$TMP/root"
"$CKPT" gc "$TMP/pub/s" --keep-last 1 --compact >"$TMP/out" 2>"$TMP/err"
[ $? -eq 0 ] || one_line "$TMP/err" "ckpt gc --compact, data.mdb.gc a link"
victim_untouched "ckpt gc --compact with data.mdb.gc a link"
"${as_user[@]}" rm -f "$TMP/pub/s/data.mdb.gc"

# 6. a root-owned store directory others may write: refused, naming its mode; sticky: opens
chmod 777 "$TMP/root/victim"
"$CKPT" info "$TMP/root/victim" >"$TMP/out" 2>"$TMP/err" && fail "ckpt info in a 0777 directory"
one_line "$TMP/err" "ckpt info, 0777"
grep -q "0777" "$TMP/err" || fail "the refusal does not name the mode: $(cat "$TMP/err")"
chmod 1777 "$TMP/root/victim"
"$CKPT" info "$TMP/root/victim" >"$TMP/out" 2>"$TMP/err" || fail "sticky 1777: $(cat "$TMP/err")"
chmod 700 "$TMP/root/victim"
# a store of root's files in the user's directory: one line saying what to do
cp -a "$TMP/root/victim" "$TMP/pub/rootfiles"
chown $U:$U "$TMP/pub/rootfiles"
chmod 600 "$TMP/pub/rootfiles/data.mdb" "$TMP/pub/rootfiles/lock.mdb"
"$CKPT" gc "$TMP/pub/rootfiles" --keep-last 1 >"$TMP/out" 2>"$TMP/err" &&
	fail "ckpt gc of root's files in the user's directory succeeded"
one_line "$TMP/err" "root's files in the user's directory"
grep -q "chown" "$TMP/err" || fail "the error does not say what to do: $(cat "$TMP/err")"
# the user's store under root's 0700 directory: the user cannot reach it; the message says so,
# once, and does not tell to chown files that are already theirs
cp -a "$TMP/pub/s2" "$TMP/root/theirs"
chown -R $U:$U "$TMP/root/theirs"
for cmd in "info" "gc --compact" "gc --compact --keep-last 1" "backup $TMP/root/theirs.bak"; do
	# shellcheck disable=SC2086
	"$CKPT" ${cmd%% *} "$TMP/root/theirs" $([ "$cmd" = info ] || echo "${cmd#* }") \
		>"$TMP/out" 2>"$TMP/err" &&
		fail "ckpt $cmd of the user's store under root's 0700 directory succeeded"
	one_line "$TMP/err" "ckpt $cmd, the user's store under root's 0700 directory"
	[ "$(grep -o "cannot reach it" "$TMP/err" | wc -l)" -eq 1 ] ||
		fail "ckpt $cmd: not said once that the owner cannot reach it: $(cat "$TMP/err")"
	grep -q "chown" "$TMP/err" && fail "ckpt $cmd: tells to chown: $(cat "$TMP/err")"
done
# ckpt-train --resume says it the same way, without a second hint about write access
"$TRAIN" --store "$TMP/root/theirs" --resume --epochs 9 "${opts[@]}" >"$TMP/out" 2>"$TMP/err" &&
	fail "ckpt-train --resume of the user's store under root's 0700 directory succeeded"
one_line "$TMP/err" "ckpt-train --resume, the user's store under root's 0700 directory"
grep -q "cannot reach it" "$TMP/err" && ! grep -q "needs write access" "$TMP/err" ||
	fail "ckpt-train --resume: $(cat "$TMP/err")"
chmod -R a+rwX "$TMP/pub"
echo "test_security_store_owner: ok"
