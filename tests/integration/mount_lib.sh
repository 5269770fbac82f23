# tests/integration/mount_lib.sh - helpers for the ckptfs mount tests (sourced, not run)
#
# Every mount is made in the foreground (-f) in the background of the test, so the test knows
# the daemon's pid; the EXIT trap unmounts every mount it made (fusermount3 -u) and kills only
# those pids. Temporary files live in one mktemp -d directory, removed at exit.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=$ROOT/build/bin
TOOLS=$ROOT/build/tests/tools
PY=/usr/bin/python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/ckptfs-test.XXXXXX")
MOUNTS=()
PIDS=()

fail() {
	echo "FAIL: $*" >&2
	if [ -s "$TMP/ckptfs.log" ]; then
		echo "--- ckptfs log:" >&2
		tail -n 20 "$TMP/ckptfs.log" >&2
	fi
	exit 1
}

cleanup() {
	local m p
	for m in "${MOUNTS[@]+"${MOUNTS[@]}"}"; do
		if is_mounted "$m"; then
			fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
		fi
	done
	for p in "${PIDS[@]+"${PIDS[@]}"}"; do
		[ -n "$p" ] || continue
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

# mount_escape PATH: PATH as /proc/self/mounts writes it (' ', TAB, newline and '\' as \ooo)
mount_escape() {
	local m=${1//\\/\\134}
	m=${m// /\\040}
	m=${m//$'\t'/\\011}
	printf '%s' "${m//$'\n'/\\012}"
}

# is_mounted PATH: a mount at PATH
is_mounted() {
	MOUNT_PATH=$(mount_escape "$1") awk '$2 == ENVIRON["MOUNT_PATH"] { found = 1 } END { exit !found }' /proc/self/mounts
}

# ckptfs_mounts_under DIR: the ckptfs mounts at DIR or below it, one line each (mounts of other
# tests or of the user elsewhere are not counted)
ckptfs_mounts_under() {
	MOUNT_PATH=$(mount_escape "$1") awk '$3 == "fuse.ckptfs" &&
		($2 == ENVIRON["MOUNT_PATH"] || index($2, ENVIRON["MOUNT_PATH"] "/") == 1)' /proc/self/mounts
}

# require_fuse: a usable /dev/fuse, or fail in CI and skip elsewhere
. "$ROOT/tests/integration/fuse_lib.sh"

trainer_usable() {
	[ -x "$BIN/ckpt-train" ] && "$BIN/ckpt-train" --help 2>&1 | grep -q synthetic
}

# make_store DIR EPOCHS: a store written by ckpt-train on synthetic data (mkstore otherwise)
make_store() {
	if trainer_usable; then
		"$BIN/ckpt-train" --store "$1" --data synthetic --epochs "$2" --layers 784,32,10 \
			--quiet --threads 1 >"$TMP/train.log" 2>&1 || fail "ckpt-train: $(tail -n 3 "$TMP/train.log")"
	else
		[ -x "$TOOLS/mkstore" ] || fail "neither ckpt-train nor build/tests/tools/mkstore"
		"$TOOLS/mkstore" "$1" --epochs "$2" --no-sync >"$TMP/mkstore.log" 2>&1 ||
			fail "mkstore: $(tail -n 3 "$TMP/mkstore.log")"
	fi
}

# track_mount MNT [PID]: a mount made some other way (daemonized), unmounted at exit
track_mount() {
	MOUNTS+=("$1")
	PIDS+=("${2:-}")
}

# mount_store STORE MNT [ckptfs options...]: foreground daemon in the background; waits for it
mount_store() {
	local store=$1 mnt=$2
	shift 2
	mkdir -p "$mnt"
	"$BIN/ckptfs" "$store" "$mnt" -f "$@" 2>>"$TMP/ckptfs.log" &
	local pid=$!
	PIDS+=("$pid")
	MOUNTS+=("$mnt")
	for _ in $(seq 1 400); do
		is_mounted "$mnt" && return 0
		kill -0 "$pid" 2>/dev/null || fail "ckptfs exited before mounting $mnt"
		sleep 0.05
	done
	fail "ckptfs did not mount $mnt within 5 s"
}

# unmount_store MNT: fusermount3 -u and wait for that mount's daemon to exit cleanly
unmount_store() {
	local mnt=$1 i pid
	fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt"
	for i in "${!MOUNTS[@]}"; do
		if [ "${MOUNTS[$i]}" = "$mnt" ]; then
			pid=${PIDS[$i]:-}
			if [ -n "$pid" ]; then
				wait "$pid"
				local rc=$?
				[ $rc -eq 0 ] || fail "ckptfs for $mnt exited with $rc after unmount"
			fi
			unset 'MOUNTS[i]' 'PIDS[i]'
		fi
	done
}

# skip_unless_root_setpriv NAME UID: the test needs root and setpriv, and UID must reach $TMP
# (made 0755 here); otherwise it says it is skipped and exits 0
skip_unless_root_setpriv() {
	local name=$1 uid=$2
	if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null; then
		echo "$name: skipped (needs root and setpriv)"
		exit 0
	fi
	chmod 755 "$TMP"
	if ! setpriv --reuid="$uid" --regid="$uid" --clear-groups test -x "$TMP"; then
		echo "$name: skipped (uid $uid cannot reach $TMP)"
		exit 0
	fi
}
