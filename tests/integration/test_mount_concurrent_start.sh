#!/usr/bin/env bash
# tests/integration/test_mount_concurrent_start.sh - several ckptfs started at the same moment
# on one mountpoint (a cron job starting the mount twice): exactly one mounts and exits 0, every
# other one is refused with the one line "ckptfs: error: M is already a ckptfs mount (...)",
# exit 1, and one mount is left. Before, the already-mounted check raced: two could both exit 0
# with two mounts stacked there, and with different stores the one that "mounted" the second
# store showed the first store's checkpoints.
#
# Daemonized (the default) and in the foreground (-f); the same store and two different ones.
# As nobody (fusermount3 mounts), also on a mountpoint nobody may search but not read, where
# ckptfs cannot lock the directory: a single start still mounts.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse
N=4
ROUNDS=10

make_store "$TMP/s1" 1
make_store "$TMP/s2" 2
cd "$TMP" || fail "cd $TMP"
mnt=$TMP/mnt
mkdir -p "$mnt"
# a run that stacked a mount on another: the EXIT trap unmounts once per entry
for _ in $(seq 0 $N); do track_mount "$mnt"; done
refusal="ckptfs: error: $mnt is already a ckptfs mount (unmount it with fusermount3 -u $mnt)"

count_mounts() { ckptfs_mounts_under "$TMP" | wc -l; }
MOUNTER=() # the command prefix of the user who mounts (only that user may look inside)

# judge ROUND STORES...: of the runs whose stderr is $TMP/err.K and exit status $TMP/rc.K (one
# per store given), exactly one exited 0 saying nothing, the others 1 with the refusal line;
# one ckptfs mount under $TMP, showing the winner's store. Sets $winner (its K).
judge() {
	local round=$1 k rc err
	shift
	winner=
	for k in $(seq 1 $#); do
		rc=$(cat "$TMP/rc.$k")
		err=$(cat "$TMP/err.$k")
		if [ "$rc" -eq 0 ]; then
			[ -z "$winner" ] ||
				fail "round $round: runs $winner and $k both exited 0 ($(count_mounts) mounts)"
			[ -z "$err" ] || fail "round $round: run $k exited 0 but said: $err"
			winner=$k
		else
			[ "$rc" -eq 1 ] && [ "$err" = "$refusal" ] ||
				fail "round $round: run $k: exit $rc, expected 1 with '$refusal': $err"
		fi
	done
	[ -n "$winner" ] || fail "round $round: no run mounted"
	[ "$(count_mounts)" -eq 1 ] ||
		fail "round $round: expected one mount: $(ckptfs_mounts_under "$TMP")"
	local store=${!winner} epochs
	epochs=$([ "$store" = "$TMP/s1" ] && echo 1 || echo 2)
	[ "$(ckptfs_mounts_under "$TMP" | awk '{ print $1 }')" = "$store" ] ||
		fail "round $round: run $winner mounted $store; the mounts: $(ckptfs_mounts_under "$TMP")"
	local latest
	latest=$("${MOUNTER[@]+"${MOUNTER[@]}"}" readlink "$mnt/latest")
	[ "$latest" = "epoch-000$epochs" ] ||
		fail "round $round: run $winner mounted $store, but latest is '$latest'"
}

# daemonized ROUND STORES...: start one ckptfs per store at once (daemonizing), wait for all, judge
daemonized() {
	local round=$1 k
	shift
	rm -f "$TMP"/rc.* "$TMP"/err.*
	for k in $(seq 1 $#); do
		("$BIN/ckptfs" "${!k}" "$mnt" 2>"$TMP/err.$k"; echo $? >"$TMP/rc.$k") &
	done
	wait
	judge "$round" "$@"
	fusermount3 -u "$mnt" || fail "round $round: fusermount3 -u $mnt"
}

# foreground ROUND STORES...: the same with -f; the losers exit, the winner serves until unmounted
foreground() {
	local round=$1 k pids=() left
	shift
	rm -f "$TMP"/rc.* "$TMP"/err.*
	for k in $(seq 1 $#); do
		("$BIN/ckptfs" "${!k}" "$mnt" -f 2>"$TMP/err.$k"; echo $? >"$TMP/rc.$k") &
		pids+=($!)
	done
	for _ in $(seq 1 200); do
		left=0
		for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && left=$((left + 1)); done
		[ "$left" -le 1 ] && is_mounted "$mnt" && break
		sleep 0.05
	done
	[ "$left" -eq 1 ] || fail "round $round (-f): $left runs still going after 10 s"
	for k in $(seq 1 $#); do
		[ -e "$TMP/rc.$k" ] || echo 0 >"$TMP/rc.$k" # the one serving: judged below on exit
	done
	judge "$round" "$@"
	rm -f "$TMP/rc.$winner"
	fusermount3 -u "$mnt" || fail "round $round (-f): fusermount3 -u $mnt"
	wait
	[ "$(cat "$TMP/rc.$winner")" -eq 0 ] ||
		fail "round $round (-f): the serving one exited $(cat "$TMP/rc.$winner") after unmount"
}

for round in $(seq 1 $ROUNDS); do
	stores=()
	for _ in $(seq 1 $N); do stores+=("$TMP/s1"); done
	daemonized "$round" "${stores[@]}"
done
for round in $(seq 1 $ROUNDS); do
	daemonized "$round (two stores)" "$TMP/s1" "$TMP/s2" "$TMP/s1" "$TMP/s2"
done
for round in 1 2 3; do
	foreground "$round" "$TMP/s1" "$TMP/s2" "$TMP/s1" "$TMP/s2"
done
[ "$(count_mounts)" -eq 0 ] || fail "left mounted: $(ckptfs_mounts_under "$TMP")"

# ---- as nobody (fusermount3 mounts): the lock works for a user too; on a mountpoint nobody
# may search but not read (no lock can be taken on it) a single start still mounts
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null ||
	! [ -u "$(command -v fusermount3)" ] || ! "${NOBODY[@]}" test -r /dev/fuse -a -w /dev/fuse; then
	echo "test_mount_concurrent_start: ok (the part as nobody skipped: needs root, setpriv," \
		"a setuid fusermount3 and a /dev/fuse nobody may open)"
	exit 0
fi
chmod 755 "$TMP"
if ! "${NOBODY[@]}" test -x "$BIN/ckptfs" -a -r "$TMP/s1/data.mdb"; then
	echo "test_mount_concurrent_start: ok (the part as nobody skipped: nobody cannot reach" \
		"$BIN/ckptfs or the store)"
	exit 0
fi
chown 65534:65534 "$mnt"
as_nobody() { "${NOBODY[@]}" "$@"; }
MOUNTER=("${NOBODY[@]}")
for round in 1 2 3; do
	rm -f "$TMP"/rc.* "$TMP"/err.*
	for k in $(seq 1 $N); do
		(as_nobody "$BIN/ckptfs" "$TMP/s1" "$mnt" 2>"$TMP/err.$k"; echo $? >"$TMP/rc.$k") &
	done
	wait
	judge "$round (nobody)" "$TMP/s1" "$TMP/s1" "$TMP/s1" "$TMP/s1"
	fusermount3 -u "$mnt" || fail "round $round (nobody): fusermount3 -u $mnt"
done
chmod 311 "$mnt" # nobody may search it and write it (fusermount3 asks), not read it
out=$(as_nobody "$BIN/ckptfs" "$TMP/s1" "$mnt" 2>&1) ||
	fail "nobody, a mountpoint it cannot read: $out"
[ -z "$out" ] && is_mounted "$mnt" ||
	fail "nobody, a mountpoint it cannot read: not mounted, or it said: $out"
fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt (mode 311)"
echo "test_mount_concurrent_start: ok"
