#!/usr/bin/env bash
# tests/integration/test_mount_exit.sh - a daemonized ckptfs unmounts and exits at once on
# SIGTERM: within 0.5 s, three times over, its exit status 0 is not asked (nobody waits on it).
#
# The daemon's parent is init (or the nearest subreaper), which reaps it: until then it is a
# zombie, and `kill -0 PID` still succeeds. Some inits reap only every second or two (1.2-1.7 s
# seen in a sandbox whose init polls), for any orphan, a plain `sleep` too: so this counts a
# zombie as exited, and so should a script that waits for a daemon to end (or it waits for
# the mount to go: `mountpoint -q`, /proc/self/mountinfo).
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse

make_store "$TMP/store" 1
mnt=$TMP/mnt
mkdir -p "$mnt"
track_mount "$mnt" # unmounted at exit; its pid is not kept: once reaped it may be reused

# daemon_pid: the pid of the ckptfs whose command line is exactly ours
daemon_pid() {
	local d want got
	want=$(printf '%s\n' "$BIN/ckptfs" "$TMP/store" "$mnt")
	for d in /proc/[0-9]*; do
		got=$(tr '\0' '\n' 2>/dev/null <"$d/cmdline") || continue
		[ "$got" = "$want" ] && { echo "${d#/proc/}"; return 0; }
	done
	return 1
}
# gone PID: no such process, or a zombie (it has exited; its reaper has not looked yet)
gone() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	[ "${stat%% *}" = Z ]
}

for round in 1 2 3; do
	"$BIN/ckptfs" "$TMP/store" "$mnt" 2>>"$TMP/ckptfs.log" || fail "round $round: ckptfs exited $?"
	is_mounted "$mnt" || fail "round $round: not mounted when ckptfs returned"
	pid=$(daemon_pid) || fail "round $round: no ckptfs daemon for $mnt"
	cat "$mnt/epoch-0001/metrics.json" >/dev/null || fail "round $round: metrics.json unreadable"
	sleep 0.3 # the watcher and reaper threads are in their waits
	start=$(date +%s%N)
	kill -TERM "$pid" || fail "round $round: kill $pid"
	for _ in $(seq 100); do
		gone "$pid" && ! is_mounted "$mnt" && break
		sleep 0.005
	done
	ms=$((($(date +%s%N) - start) / 1000000))
	is_mounted "$mnt" && fail "round $round: still mounted ${ms} ms after SIGTERM"
	gone "$pid" || fail "round $round: the daemon (pid $pid) still runs ${ms} ms after SIGTERM"
	[ "$ms" -le 500 ] || fail "round $round: the daemon took ${ms} ms to exit after SIGTERM"
done
echo "test_mount_exit: ok"
