#!/usr/bin/env bash
# tests/integration/test_mount_user.sh - ckptfs mounted by a user other than root (nobody),
# where fusermount3 does the mount
#
# fusermount3's refusals (no write access to the mountpoint, mount_max) end as ONE line of
# ckptfs's that carries fusermount3's words; mounts that work say nothing, daemonized or not.
# ckptfs reads /etc/fuse.conf's user_allow_other as fusermount3 does (leading white space, a last
# line without its newline, a line too long). access(2) answers the owner as a read-only file
# system does. An explicit -o readahead_kb the user cannot set gets a note.
# Runs as root in a private mount namespace, with a /dev/fuse that nobody may open and an
# /etc/fuse.conf of its own bound over the real ones (which stay untouched).
set -uo pipefail
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null || ! unshare -m true 2>/dev/null; then
	echo "SKIP: needs root, setpriv and unshare -m (a private mount namespace)" >&2
	exit 77
fi
if [ -z "${CKPTFS_TEST_IN_NAMESPACE:-}" ]; then
	CKPTFS_TEST_IN_NAMESPACE=1 exec unshare -m --propagation private bash "$0" "$@"
fi
. "$(dirname "$0")/mount_lib.sh"
require_fuse
fm=$(command -v fusermount3)
[ -u "$fm" ] || { echo "SKIP: $fm is not setuid root" >&2; exit 77; }
"${NOBODY[@]}" test -x "$BIN/ckptfs" ||
	{ echo "SKIP: nobody cannot run $BIN/ckptfs (a directory above it is closed)" >&2; exit 77; }

# ---- the namespace: a tmpfs with the device node and the fuse.conf, bound over the real ones
NS=$TMP/ns
trap 'umount /etc/fuse.conf /dev/fuse 2>/dev/null; umount "$NS" 2>/dev/null; cleanup' EXIT
mkdir -p "$NS"
mount -t tmpfs -o mode=755 ckptfs-test "$NS" || fail "cannot mount a tmpfs on $NS"
mknod "$NS/fuse" c "$((0x$(stat -c %t /dev/fuse)))" "$((0x$(stat -c %T /dev/fuse)))" &&
	chmod 666 "$NS/fuse" && mount --bind "$NS/fuse" /dev/fuse || fail "cannot bind a /dev/fuse for nobody"
: >"$NS/fuse.conf"
mount --bind "$NS/fuse.conf" /etc/fuse.conf || fail "cannot bind a test fuse.conf"
conf() { printf "$1" >"$NS/fuse.conf"; } # the bound file, rewritten in place

chmod 755 "$TMP"
store=$TMP/store
make_store "$store" 2
mnt=$TMP/mnt
mkdir -p "$mnt" "$TMP/rootdir"
chown 65534:65534 "$mnt"
track_mount "$mnt"
track_mount "$TMP/rootdir"

# as_nobody_ckptfs ARGS...: run ckptfs as nobody; $rc, $out (stderr), nothing on stdout
as_nobody_ckptfs() {
	"${NOBODY[@]}" "$BIN/ckptfs" "$@" >"$TMP/stdout" 2>"$TMP/stderr"
	rc=$?
	out=$(cat "$TMP/stderr")
	[ -s "$TMP/stdout" ] && fail "ckptfs $* wrote to stdout: $(cat "$TMP/stdout")"
}
# refused WANT ARGS...: exit 1, one 'ckptfs: error:' line matching WANT, nothing mounted
refused() {
	local want=$1
	shift
	as_nobody_ckptfs "$@"
	[ $rc -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && [[ $out == "ckptfs: error: "* ]] &&
		grep -q -- "$want" <<<"$out" || fail "nobody: ckptfs $*: exit $rc, wanted one line '$want': $out"
	is_mounted "$2" && fail "nobody: ckptfs $* failed but left a mount"
}

# ---- fusermount3 refuses: its reason inside ckptfs's one line (it was a line of its own, and
# ckptfs said 'libfuse gave no reason')
refused "^ckptfs: error: cannot mount $store on $TMP/rootdir (fusermount3: user has no write access to mountpoint $TMP/rootdir)\$" \
	"$store" "$TMP/rootdir"
refused "^ckptfs: error: cannot mount $store on $TMP/rootdir (fusermount3: user has no write access to mountpoint $TMP/rootdir)\$" \
	"$store" "$TMP/rootdir" -f
conf 'mount_max = 0\n'
refused "(fusermount3: too many FUSE filesystems mounted; mount_max=N can be set in /etc/fuse.conf)\$" "$store" "$mnt"

# ---- mounts that work, daemonized (the default) and with -f: exit 0, nothing said (what
# libfuse lets fusermount3 say on a mount that works would be passed on as it was)
conf ''
as_nobody_ckptfs "$store" "$mnt"
[ $rc -eq 0 ] && [ -z "$out" ] && is_mounted "$mnt" || fail "nobody: daemonized mount: exit $rc: $out"
[ "$("${NOBODY[@]}" readlink "$mnt/latest")" = epoch-0002 ] || fail "nobody: the daemonized mount does not serve"
fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt"
"${NOBODY[@]}" "$BIN/ckptfs" "$store" "$mnt" -f 2>"$TMP/fg.err" &
PIDS+=($!)
for _ in $(seq 1 100); do is_mounted "$mnt" && break; sleep 0.05; done
is_mounted "$mnt" || fail "nobody: ckptfs -f did not mount: $(cat "$TMP/fg.err")"
fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt"
wait "${PIDS[-1]}" || fail "nobody: ckptfs -f did not exit 0 after the unmount"
unset 'PIDS[-1]'
[ -s "$TMP/fg.err" ] && fail "nobody: ckptfs -f said: $(cat "$TMP/fg.err")"

# ---- access(2) for the owner: what a read-only file system answers (without an access
# handler the kernel said yes to everything: test -x was true for 0444 files)
as_nobody_ckptfs "$store" "$mnt"
[ $rc -eq 0 ] || fail "nobody: mount: exit $rc: $out"
"${NOBODY[@]}" "$PY" "$(dirname "$0")/mount_access.py" "$mnt" >"$TMP/access.out" 2>&1 ||
	fail "access(2) as the owner: $(cat "$TMP/access.out")"
"${NOBODY[@]}" find "$mnt" -type f -executable >"$TMP/exec.out" 2>&1
[ -s "$TMP/exec.out" ] && fail "find -executable lists files of the mount: $(head -n 3 "$TMP/exec.out")"
"${NOBODY[@]}" test -x "$mnt/run.json" && fail "test -x is true for a 0444 file"
"${NOBODY[@]}" test -r "$mnt/best/metrics.json" || fail "test -r of best/metrics.json is false"
"${NOBODY[@]}" test -w "$mnt/latest/metrics.json" && fail "test -w is true on a read-only mount"
# root mounting on nobody's mount (without allow_other the kernel keeps root out of it): the
# refusal says whose mount is there and how to unmount it (it said only "Permission denied")
out=$("$BIN/ckptfs" "$store" "$mnt" 2>&1) && fail "root mounted over nobody's mount"
grep -q "it is another user's FUSE mount; that user or root can unmount it: fusermount3 -u" <<<"$out" ||
	fail "root on nobody's mount: $out"
"${NOBODY[@]}" test -x "$mnt/latest" || fail "test -x of latest (a directory through the link) is false"
fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt"

# ---- user_allow_other read as fusermount3 reads it
conf '\tuser_allow_other  # leading and trailing white space, a comment\n'
as_nobody_ckptfs "$store" "$mnt" -o allow_other
[ $rc -eq 0 ] && [ -z "$out" ] || fail "nobody, allow_other, '\\tuser_allow_other': exit $rc: $out"
awk -v m="$mnt" '$2 == m { print $4 }' /proc/self/mounts | grep -q "allow_other" ||
	fail "allow_other not in the mount's options: $(grep "$mnt" /proc/self/mounts)"
fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt"
# fusermount3 skips a last line without its newline and a line over 255 bytes: ckptfs too, in
# one line of its own before fusermount3 would print two
conf 'user_allow_other'
refused "^ckptfs: error: -o allow_other and allow_root need the line user_allow_other in /etc/fuse.conf when a user other than root mounts (there it is the last line and lacks its newline" \
	"$store" "$mnt" -o allow_other
conf "$(printf '%*s' 239 '')user_allow_other\\n"
refused "^ckptfs: error: -o allow_other and allow_root need the line user_allow_other in /etc/fuse.conf when a user other than root mounts\$" \
	"$store" "$mnt" -o allow_other
conf "$(printf '%*s' 238 '')user_allow_other\\n"
as_nobody_ckptfs "$store" "$mnt" -o allow_other
[ $rc -eq 0 ] || fail "nobody, allow_other, a 255-byte line: exit $rc: $out"
fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt"

# ---- -o readahead_kb given by a user who cannot set it: one note, still exit 0; the default
# says nothing
conf ''
as_nobody_ckptfs "$store" "$mnt" -o readahead_kb=2048
[ $rc -eq 0 ] && [ "$(wc -l <<<"$out")" -eq 1 ] &&
	grep -q "^ckptfs: note: -o readahead_kb=2048 is not applied: cannot write /sys/class/bdi/[0-9]*:[0-9]*/read_ahead_kb (Permission denied: only root may)" <<<"$out" ||
	fail "nobody, -o readahead_kb=2048: exit $rc: '$out'"
fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt"
as_nobody_ckptfs "$store" "$mnt"
[ $rc -eq 0 ] && [ -z "$out" ] || fail "nobody, default readahead: exit $rc: '$out'"
fusermount3 -u "$mnt" || fail "fusermount3 -u $mnt"
echo "test_mount_user: ok"
