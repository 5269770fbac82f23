#!/usr/bin/env bash
# tests/integration/test_mount.sh - mount a trained store and use it with ordinary tools
#
# ls -l of every level, readlink best vs `ckpt info`, numpy loads of every .npy (mount_check.py),
# cp -r, rsync twice (the second transfers nothing), tar, sha256sum and inode numbers equal
# across a remount, writes refused with EROFS, a daemonized mount with SIGTERM-free unmount,
# the errors ckptfs reports before daemonizing (exit 2 for usage errors, 1 for the rest),
# mount(8)'s mounts read-only, nosuid and nodev, and (as root) allow_other with the kernel
# checking modes and a mount remounted read-write that still refuses every write.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse

store=$TMP/store
mnt=$TMP/mnt
make_store "$store" 3
mount_store "$store" "$mnt"

# ---- ls -l of each level
ls -l "$mnt" >"$TMP/ls.root" || fail "ls -l of the root"
for e in epoch-0001 epoch-0002 epoch-0003; do
	grep -q "^dr-xr-xr-x .* $e\$" "$TMP/ls.root" || fail "root lacks directory $e: $(cat "$TMP/ls.root")"
done
grep -q '^-r--r--r-- .* run.json$' "$TMP/ls.root" || fail "root lacks run.json"
grep -q '^-r--r--r-- .* history.csv$' "$TMP/ls.root" || fail "root lacks history.csv"
grep -q '^lrwxrwxrwx .* best -> epoch-[0-9]\{4\}$' "$TMP/ls.root" || fail "root lacks best symlink"
grep -q '^lrwxrwxrwx .* latest -> epoch-0003$' "$TMP/ls.root" || fail "latest is not epoch-0003"
[ "$(stat -c %U "$mnt/run.json")" = "$(id -un)" ] || fail "files are not owned by the mounting user"
ls -l "$mnt/epoch-0002" >"$TMP/ls.epoch" || fail "ls -l of an epoch"
for f in metrics.json model.safetensors model.pt checkpoint.pt; do
	grep -q " $f\$" "$TMP/ls.epoch" || fail "epoch-0002 lacks $f"
done
grep -q '^dr-xr-xr-x .* model$' "$TMP/ls.epoch" || fail "epoch-0002 lacks model/"
grep -q '^dr-xr-xr-x .* optimizer$' "$TMP/ls.epoch" || fail "epoch-0002 lacks optimizer/"
ls -l "$mnt/epoch-0002/model" | grep -q '^-r--r--r-- .* fc1.weight.npy$' || fail "model/ lacks fc1.weight.npy"
ls -l "$mnt/epoch-0002/optimizer" | grep -q ' param_groups.json$' || fail "optimizer/ lacks param_groups.json"
ls "$mnt/epoch-0002/optimizer" | grep -q '^fc1.weight\..*\.npy$' || fail "optimizer/ lacks fc1.weight buffers"
[ "$(head -n 1 "$mnt/history.csv" | cut -d, -f1-3)" = "epoch,step,time" ] || fail "history.csv header"
[ "$(wc -l <"$mnt/history.csv")" -eq 4 ] || fail "history.csv should have 3 rows"

# ---- best from scripts
best_info=$("$BIN/ckpt" info "$store" | sed -n 's/^best: \(epoch-[0-9]*\).*/\1/p')
[ -n "$best_info" ] || fail "ckpt info shows no best"
[ "$(readlink "$mnt/best")" = "$best_info" ] || fail "readlink best = $(readlink "$mnt/best"), ckpt info: $best_info"
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["is_best"] is True and "metrics" in d, d' \
	"$mnt/best/metrics.json" || fail "best/metrics.json is not the best's JSON"

# ---- every file: stat size = bytes read, numpy loads equal the stored tensors
"$PY" "$(dirname "$0")/mount_check.py" "$mnt" "$store" "$BIN/ckpt" || fail "mount_check.py"
[ "$("$BIN/ckpt" cat "$store" best/model/fc1.weight.npy | sha256sum)" = "$(sha256sum <"$mnt/best/model/fc1.weight.npy")" ] ||
	fail "ckpt cat and the mount disagree"

# ---- ckpt ls / ckpt cat serve the same view without a mount
for d in "" best best/model epoch-0001/optimizer; do
	[ "$("$BIN/ckpt" ls "$store" "$d" | sort)" = "$(ls -A "$mnt/$d" | sort)" ] || fail "ckpt ls $d differs from ls"
done
"$BIN/ckpt" ls -l "$store" | grep -q "^lrwxrwxrwx .* best -> $(readlink "$mnt/best")\$" || fail "ckpt ls -l: best"
cmp -s <("$BIN/ckpt" cat "$store" history.csv) "$mnt/history.csv" || fail "ckpt cat history.csv differs"
out=$("$BIN/ckpt" cat "$store" epoch-0001/nope 2>&1) && fail "ckpt cat of a missing path succeeded"
[ "$(wc -l <<<"$out")" -eq 1 ] && grep -q "No such file" <<<"$out" || fail "ckpt cat missing path: $out"
# a trailing slash after a file is ENOTDIR, as through the mount
out=$("$BIN/ckpt" cat "$store" run.json/ 2>&1) && fail "ckpt cat run.json/ succeeded"
grep -q "Not a directory" <<<"$out" || fail "ckpt cat run.json/: $out"
# bad options: one 'ckpt: error:' line, exit 2 (was getopt's line plus a usage line)
for args in "ls -x $store" "ls --bogus $store" "cat -q $store run.json" "cat $store run.json --map-location"; do
	rc=0
	out=$("$BIN/ckpt" $args 2>&1 >/dev/null) || rc=$?
	[ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && grep -q "^ckpt: error: " <<<"$out" ||
		fail "ckpt $args: exit $rc, stderr: $out"
done
"$BIN/ckpt" ls >/dev/null 2>&1
[ $? -eq 2 ] || fail "ckpt ls without a store should exit 2"

# ---- cp, rsync, tar
mkdir "$TMP/out"
cp -r "$mnt/best/" "$TMP/out/" 2>"$TMP/cp.err" || fail "cp -r: $(cat "$TMP/cp.err")"
diff -r "$mnt/best/" "$TMP/out/best" >/dev/null || fail "cp -r copy differs"
rsync -a "$mnt/" "$TMP/backup/" 2>"$TMP/rsync.err" || fail "rsync -a: $(cat "$TMP/rsync.err")"
second=$(rsync -a --itemize-changes "$mnt/" "$TMP/backup/" 2>&1) || fail "second rsync: $second"
[ -z "$second" ] || fail "second rsync transferred something: $second"
diff -r --no-dereference "$mnt/" "$TMP/backup/" >/dev/null || fail "diff -r finds a difference after rsync"
tar cf "$TMP/mnt.tar" -C "$mnt" . 2>"$TMP/tar.err" || fail "tar cf: $(cat "$TMP/tar.err")"
[ ! -s "$TMP/tar.err" ] || fail "tar complained: $(cat "$TMP/tar.err")"
[ "$(tar tf "$TMP/mnt.tar" | grep -c '\.npy$')" -eq "$(find "$mnt/" -name '*.npy' | wc -l)" ] ||
	fail "tar archive lacks .npy files"

# ---- writes fail with EROFS
for cmd in "touch $mnt/new" "touch $mnt/run.json" "mkdir $mnt/d" "rm -f $mnt/run.json" \
	"mv $mnt/run.json $mnt/r" "chmod 600 $mnt/run.json" "rmdir $mnt/epoch-0001"; do
	out=$($cmd 2>&1) && fail "'$cmd' succeeded on a read-only mount"
	grep -q "Read-only file system" <<<"$out" || fail "'$cmd': expected EROFS, got: $out"
done
out=$( (echo x >>"$mnt/history.csv") 2>&1) && fail "appending to history.csv succeeded"
grep -q "Read-only file system" <<<"$out" || fail "append: expected EROFS, got: $out"
[ ! -e "$mnt/nope" ] || fail "a missing path exists"
# access(2) answers as a local read-only file system does (without an access handler the kernel
# answered yes to everything after the first ENOSYS: test -x was true for 0444 files)
"$PY" "$(dirname "$0")/mount_access.py" "$mnt" >"$TMP/access.out" 2>&1 ||
	fail "access(2) on the mount: $(cat "$TMP/access.out")"
[ -x "$mnt/run.json" ] && fail "test -x is true for the 0444 run.json"
[ -x "$mnt/best/metrics.json" ] && fail "test -x is true for best/metrics.json"
[ -w "$mnt/latest/model" ] && fail "test -w is true on the read-only mount"
[ -r "$mnt/latest/model.pt" ] && [ -x "$mnt/best" ] && [ -x "$mnt/epoch-0001/model" ] ||
	fail "test -r of a file or test -x of a directory (through best) is false"
[ -z "$(find "$mnt/" -type f -executable)" ] || fail "find -executable lists files of the mount"
out=$(cat "$mnt/epoch-0009/metrics.json" 2>&1) && fail "a missing epoch reads"
grep -q "No such file or directory" <<<"$out" || fail "missing path: expected ENOENT, got: $out"

# ---- df: the store's size, all used, nothing free; tar --xattrs finds no attributes, quietly
blocks=$(stat -f -c '%b %S %f' "$mnt")
want=$((($(stat -c %s "$store/data.mdb") + 4095) / 4096))
[ "$blocks" = "$want 4096 0" ] || fail "stat -f MOUNT: '$blocks', wanted '$want 4096 0' (data.mdb in 4 KiB blocks)"
tar --xattrs -cf "$TMP/x.tar" -C "$mnt" . 2>"$TMP/tar.err" || fail "tar --xattrs of the mount: $(cat "$TMP/tar.err")"
[ -s "$TMP/tar.err" ] && fail "tar --xattrs warned: $(head -2 "$TMP/tar.err")"

# ---- the same bytes and inode numbers after a remount
(cd "$mnt" && find . -type f | sort | xargs -d '\n' sha256sum) >"$TMP/sums.1" || fail "sha256sum"
(cd "$mnt" && find . | sort | xargs -d '\n' stat -c '%i %s %Y %n') >"$TMP/inodes.1"
unmount_store "$mnt"
mount_store "$store" "$mnt"
(cd "$mnt" && find . -type f | sort | xargs -d '\n' sha256sum) >"$TMP/sums.2"
(cd "$mnt" && find . | sort | xargs -d '\n' stat -c '%i %s %Y %n') >"$TMP/inodes.2"
cmp -s "$TMP/sums.1" "$TMP/sums.2" || fail "sha256sum differs across a remount"
cmp -s "$TMP/inodes.1" "$TMP/inodes.2" || fail "inode numbers/sizes/mtimes differ across a remount"
kill -TERM "${PIDS[-1]}"
for _ in $(seq 1 100); do is_mounted "$mnt" || break; sleep 0.05; done
is_mounted "$mnt" && fail "SIGTERM did not unmount"
wait "${PIDS[-1]}" || fail "ckptfs did not exit cleanly on SIGTERM"
unset 'MOUNTS[-1]' 'PIDS[-1]'

# ---- daemonized mount (the default), unmounted with fusermount3 -u
"$BIN/ckptfs" "$store" "$mnt" 2>"$TMP/daemon.err" || fail "daemonized ckptfs: $(cat "$TMP/daemon.err")"
track_mount "$mnt"
is_mounted "$mnt" || fail "daemonized ckptfs returned without a mount"
# INIT is answered and the readahead raised (as root) before ckptfs returns
if [ "$(id -u)" = 0 ]; then
	ra=$(cat "/sys/class/bdi/$(mountpoint -d "$mnt")/read_ahead_kb")
	[ "$ra" = 1024 ] || fail "read_ahead_kb right after ckptfs returned: $ra, expected 1024"
fi
[ "$(readlink "$mnt/latest")" = epoch-0003 ] || fail "daemonized mount: latest"
grep -q "^$store $mnt fuse.ckptfs ro," /proc/self/mounts || fail "mount entry: $(grep "$mnt" /proc/self/mounts)"
# -o fsname and subtype are the user's choice (they were dropped for the store path and ckptfs)
mkdir -p "$TMP/mfs"
track_mount "$TMP/mfs"
"$BIN/ckptfs" "$store" "$TMP/mfs" -o fsname=foo,subtype=bar 2>"$TMP/err" ||
	fail "-o fsname=foo,subtype=bar: $(cat "$TMP/err")"
awk -v m="$TMP/mfs" '$5 == m { sub(/.* - /, ""); print $1, $2 }' /proc/self/mountinfo | grep -qx "fuse.bar foo" ||
	fail "-o fsname=foo,subtype=bar: $(grep " $TMP/mfs " /proc/self/mountinfo)"
# a mount of another type is still a FUSE mount there: not stacked on (the check knew only
# fuse.ckptfs, so a second ckptfs mounted over this one)
out=$("$BIN/ckptfs" "$store" "$TMP/mfs" 2>&1) && fail "a mount over a fuse.bar mount: exit 0"
[ "$out" = "ckptfs: error: $TMP/mfs is already a FUSE mount (fuse.bar; unmount it with fusermount3 -u $TMP/mfs)" ] ||
	fail "a mount over a fuse.bar mount: $out"
[ "$(grep -c " $TMP/mfs " /proc/self/mountinfo)" -eq 1 ] || fail "a mount over a fuse.bar mount: stacked"
fusermount3 -u "$TMP/mfs" || fail "fusermount3 -u $TMP/mfs"

# ---- errors before daemonizing: one line, exit 2 for usage errors and 1 for the rest, nothing
# mounted
check_error() { # exit-status expected-text args...
	local want_rc=$1 want=$2
	shift 2
	local out rc
	out=$("$BIN/ckptfs" "$@" 2>&1)
	rc=$?
	[ $rc -eq "$want_rc" ] || fail "ckptfs $*: exit $rc, expected $want_rc: $out"
	grep -q -- "$want" <<<"$out" || fail "ckptfs $*: expected '$want', got: $out"
	[ "$(wc -l <<<"$out")" -eq 1 ] || fail "ckptfs $*: more than one line: $out"
	[[ $out == "ckptfs: error: "* ]] || fail "ckptfs $*: not a 'ckptfs: error:' line: $out"
}
mkdir -p "$TMP/m2" "$TMP/notstore"
touch "$TMP/file"
check_error 1 "already a ckptfs mount" "$store" "$mnt"
check_error 1 "cannot open store" "$TMP/missing" "$TMP/m2"
check_error 1 'missing\\x0aline' "$TMP/missing"$'\n'"line" "$TMP/m2"
check_error 1 "^ckptfs: error: cannot open store '$TMP/notstore' ($TMP/notstore: not a ckpt store (no data.mdb))$" "$TMP/notstore" "$TMP/m2"
check_error 1 "does not exist\|No such file" "$store" "$TMP/m3"
check_error 1 "not a directory" "$store" "$TMP/file"
check_error 2 "map_location" "$store" "$TMP/m2" -o map_location=tpu
check_error 2 "bad map_location 'cuda:01'" "$store" "$TMP/m2" -o map_location=cuda:01
# names the kernel refuses as "Invalid argument" (exit 1, naming nothing) before
check_error 2 "-o fsname: needs a name (1 to 4000 bytes)" "$store" "$TMP/m2" -o fsname=
check_error 2 "-o subtype: needs a name" "$store" "$TMP/m2" -o subtype=
check_error 2 "-o fsname: too long (1 to 4000 bytes)" "$store" "$TMP/m2" \
	-o "fsname=$(head -c 5000 /dev/zero | tr '\0' a)"
check_error 2 "expected STORE and MOUNTPOINT" "$store"
check_error 2 "expected STORE and MOUNTPOINT"
check_error 2 "invalid argument .extra" "$store" "$TMP/m2" extra
check_error 2 "unknown option" "$store" "$TMP/m2" -o no_such_option
check_error 2 "unknown option" "$store" "$TMP/m2" -x
check_error 2 "unknown option" "$store" "$TMP/m2" --bogus
# a usage error is said before the store is looked at
check_error 2 "unknown option" "$TMP/missing" "$TMP/m2" -o no_such_option
check_error 2 "invalid parameter in option .max_threads=abc" "$store" "$TMP/m2" -o max_threads=abc
# numeric options: "-1" is not 4294967295, garbage is refused
check_error 2 "snapshot_idle=-1: expected a whole number" "$store" "$TMP/m2" -o snapshot_idle=-1
check_error 2 "snapshot_idle=abc: expected a whole number" "$store" "$TMP/m2" -o snapshot_idle=abc
check_error 2 "readahead_kb=-1: expected a whole number" "$store" "$TMP/m2" -o readahead_kb=-1
check_error 2 "readahead_kb=: expected a whole number" "$store" "$TMP/m2" -o readahead_kb=
check_error 2 "readahead_kb=99999999999: expected a whole number" "$store" "$TMP/m2" -o readahead_kb=99999999999
check_error 2 "max_read=1x: expected a whole number" "$store" "$TMP/m2" -o max_read=1x
# the kernel would read 4096 bytes anyway: a smaller max_read is refused, not silently raised
check_error 2 "max_read=0: expected at least 4096" "$store" "$TMP/m2" -o max_read=0
check_error 2 "max_read=4095: expected at least 4096" "$store" "$TMP/m2" -o max_read=4095
check_error 2 "missing argument after" "$store" "$TMP/m2" -o
# options the kernel refuses for a ckptfs mount: usage errors naming them (they were exit 1,
# 'cannot mount ... (fuse: mount failed: Invalid argument)')
check_error 2 "^ckptfs: error: -o blksize=4096: an option of block-device (fuseblk) mounts" "$store" "$TMP/m2" -o blksize=4096
check_error 2 "^ckptfs: error: -o blkdev: an option of block-device (fuseblk) mounts" "$store" "$TMP/m2" -o ro,blkdev
[ -e /sys/fs/selinux/enforce ] ||
	check_error 2 "^ckptfs: error: -o context=system_u:object_r:tmp_t:s0: an SELinux option, and SELinux is not enabled here" \
		"$store" "$TMP/m2" -o context=system_u:object_r:tmp_t:s0
# --help and --version: to standard output, a write error is one line and exit 1
"$BIN/ckptfs" --help | grep -q "map_location=cpu|keep|cuda|cuda:N" || fail "--help does not list map_location=cuda"
for opt in --help --version; do
	"$BIN/ckptfs" $opt >/dev/full 2>"$TMP/err"
	rc=$?
	[ $rc -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "^ckptfs: error: cannot write to standard output" "$TMP/err" ||
		fail "ckptfs $opt >/dev/full: exit $rc, stderr: $(cat "$TMP/err")"
done
# a mountpoint at or above the store would hide it from the daemon (a deadlock: it opens the
# store through its own mount after mounting); tracked so that a failure still unmounts them
track_mount "$store"
track_mount "$(dirname "$store")"
check_error 1 "would hide the store" "$store" "$store"
check_error 1 "would hide the store" "$store" "$(dirname "$store")"
is_mounted "$store" && fail "ckptfs mounted over its own store"
# a missing mountpoint is an error like the others (exit 1, README), not a usage error (2)
rc=0
"$BIN/ckptfs" "$store" "$TMP/m3" 2>/dev/null || rc=$?
[ "$rc" -eq 1 ] || fail "ckptfs with a missing mountpoint: exit $rc, expected 1"
is_mounted "$TMP/m2" && fail "a failed ckptfs left a mount"
# few file descriptors (ulimit -n): whichever step runs out (the store, the daemon's pipe),
# ckptfs says so in one line and leaves nothing mounted, or it mounts
for n in 4 5 6 7 8; do
	out=$(ulimit -n $n && "$BIN/ckptfs" "$store" "$TMP/m2" 2>&1)
	rc=$?
	if [ $rc -eq 0 ]; then
		fusermount3 -u "$TMP/m2" || fail "ulimit -n $n: cannot unmount"
	else
		[ $rc -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && [[ $out == "ckptfs: error: "* ]] ||
			fail "ckptfs under ulimit -n $n: exit $rc: '$out'"
		is_mounted "$TMP/m2" && fail "ckptfs under ulimit -n $n failed but left a mount"
	fi
done
fusermount3 -u "$mnt" || fail "fusermount3 -u of the daemonized mount"
# ---- mount(8) through mount.fuse3, source first (as /etc/fstab does); needs root
if [ "$(id -u)" = 0 ] && command -v mount.fuse3 >/dev/null; then
	mount -t fuse "$BIN/ckptfs#$store" "$mnt" -o ro,map_location=cpu 2>"$TMP/mount.err" ||
		fail "mount -t fuse ckptfs#STORE: $(cat "$TMP/mount.err")"
	track_mount "$mnt"
	grep -q "^$store $mnt fuse.ckptfs " /proc/self/mounts || fail "mount(8) did not mount ckptfs"
	[ "$(readlink "$mnt/best")" = "$best_info" ] || fail "mount(8): best"
	fusermount3 -u "$mnt" || fail "fusermount3 -u after mount(8)"
	# mount(8) hands mount.fuse3 "rw,dev,suid" by default: ckptfs still mounts ro,nosuid,nodev
	mount -t fuse "$BIN/ckptfs#$store" "$mnt" 2>"$TMP/mount.err" || fail "mount -t fuse: $(cat "$TMP/mount.err")"
	opts=$(awk -v m="$mnt" '$2 == m { print $4 }' /proc/self/mounts)
	[[ ",$opts," == *,ro,* && ",$opts," == *,nosuid,* && ",$opts," == *,nodev,* ]] ||
		fail "mount -t fuse without options: $opts (wanted ro,nosuid,nodev)"
	fusermount3 -u "$mnt" || fail "fusermount3 -u after mount(8)"
fi

# ---- never writable: not with allow_other (the kernel checks modes), not after root remounts
# the mount read-write behind ckptfs's back
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	mount_store "$store" "$mnt" -o allow_other
	opts=$(awk -v m="$mnt" '$2 == m { print $4 }' /proc/self/mounts)
	[[ ",$opts," == *,default_permissions,* && ",$opts," == *,allow_other,* ]] ||
		fail "allow_other without default_permissions: $opts"
	chmod 755 "$TMP"
	setpriv --reuid=65534 --regid=65534 --clear-groups cat "$mnt/run.json" >/dev/null 2>"$TMP/err" ||
		fail "allow_other: another user cannot read: $(cat "$TMP/err")"
	setpriv --reuid=65534 --regid=65534 --clear-groups touch "$mnt/x" 2>/dev/null &&
		fail "allow_other: another user could create a file"
	# a user other than root asking for allow_other without user_allow_other in /etc/fuse.conf:
	# one line of ckptfs's (fusermount3 printed its own first), exit 1
	if ! grep -qx '[[:space:]]*user_allow_other[[:space:]]*' /etc/fuse.conf 2>/dev/null &&
		setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$BIN/ckptfs"; then
		mkdir -p "$TMP/m4" && chmod 777 "$TMP/m4"
		out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN/ckptfs" "$store" "$TMP/m4" \
			-o allow_other 2>&1)
		rc=$?
		[ $rc -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] &&
			grep -q "^ckptfs: error: -o allow_other and allow_root need the line user_allow_other in /etc/fuse.conf" <<<"$out" ||
			fail "allow_other as another user without user_allow_other: exit $rc: $out"
		is_mounted "$TMP/m4" && fail "a refused allow_other mounted"
	fi
	chmod 700 "$TMP"
	mount -i -o remount,rw "$mnt" || fail "remount rw"
	for op in "touch $mnt/x" "mkdir $mnt/d" "rm -f $mnt/run.json" "chmod 777 $mnt/run.json" \
		"ln -s x $mnt/y" "ln $mnt/run.json $mnt/z" "mv $mnt/run.json $mnt/r" "truncate -s 0 $mnt/run.json"; do
		$op 2>"$TMP/err" && fail "'$op' succeeded on a mount remounted rw"
		grep -q "Read-only file system" "$TMP/err" || fail "'$op' after remount rw: $(cat "$TMP/err")"
	done
	"$PY" -c 'import os, sys; os.setxattr(sys.argv[1], "user.x", b"1")' "$mnt/run.json" 2>"$TMP/err" &&
		fail "setxattr succeeded"
	grep -q "Read-only file system" "$TMP/err" || fail "setxattr after remount rw: $(tail -1 "$TMP/err")"
	unmount_store "$mnt"
fi

# ---- idle open files release their snapshot (-o snapshot_idle)
store2=$TMP/store2
make_store "$store2" 4
mount_store "$store2" "$TMP/mnt2" -o snapshot_idle=1
"$PY" "$(dirname "$0")/mount_idle.py" "$TMP/mnt2" "$store2" "$BIN/ckpt" 1 || fail "idle snapshots"
unmount_store "$TMP/mnt2"

# ---- more open files than the store has reader slots (1024): they share snapshots
store3=$TMP/store3
make_store "$store3" 2
mount_store "$store3" "$TMP/mnt3"
"$PY" "$(dirname "$0")/mount_many.py" "$TMP/mnt3" "$store3" "$BIN" 2500 || fail "many open files"
unmount_store "$TMP/mnt3"
# ---- files kept open across more commits than there are reader slots: they move onto the
# newest snapshot as commits come, so opens never fail with EAGAIN
[ -x "$TOOLS/mkstore_many" ] || fail "build/tests/tools/mkstore_many is missing (run make)"
mkdir -p "$TMP/mntc"
track_mount "$TMP/mntc"
"$PY" "$(dirname "$0")/mount_commits.py" "$TMP/mntc" "$TMP/storec" "$BIN" "$TOOLS/mkstore_many" 1100 ||
	fail "open files across many commits"
# ---- ... and held files of epochs that retention deletes, each keeping its own snapshot, more
# than the mount's share of the slots: no EAGAIN; the mount shows the newest snapshot it holds
mkdir -p "$TMP/mntp"
track_mount "$TMP/mntp"
"$PY" "$(dirname "$0")/mount_pinned.py" "$TMP/mntp" "$TMP/storep" "$BIN" "$TOOLS/mkstore_many" 1000 ||
	fail "held files of deleted epochs"
# ---- the daemon's start-up fails after the fork (threads refused under ulimit -v): exit 1 with
# the reason and nothing mounted, never exit 0 without a mount
mkdir -p "$TMP/mv"
for v in 30000 60000 90000 120000 400000; do
	(ulimit -v $v && exec "$BIN/ckptfs" "$store" "$TMP/mv") 2>"$TMP/err"
	rc=$?
	if [ $rc -eq 0 ]; then
		is_mounted "$TMP/mv" || fail "ulimit -v $v: ckptfs exited 0 and nothing is mounted"
		track_mount "$TMP/mv"
		unmount_store "$TMP/mv"
	else
		[ $rc -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] ||
			fail "ulimit -v $v: exit $rc: $(cat "$TMP/err")"
		is_mounted "$TMP/mv" && fail "ulimit -v $v: exit $rc with a mount left"
	fi
done

# ---- a store on a read-only file system (bind mount): LMDB would run without locking there,
# so the mount holds the lockless readers' shared lock and a trainer is refused, naming it
if [ "$(id -u)" = 0 ]; then
	store4=$TMP/store4
	make_store "$store4" 2
	mkdir -p "$TMP/ro4" "$TMP/mnt4"
	if mount --bind "$store4" "$TMP/ro4" 2>/dev/null; then
		if mount -o remount,ro,bind "$TMP/ro4" 2>/dev/null; then
			mount_store "$TMP/ro4" "$TMP/mnt4"
			why=
			"$BIN/ckpt-train" --store "$store4" --resume --epochs 4 --quiet 2>"$TMP/err" &&
				why="a trainer wrote under a mount of the store on a read-only file system"
			[ -n "$why" ] || grep -q "is being read by pid [0-9]* (ckptfs) without lock.mdb" "$TMP/err" ||
				why="read-only file system: $(cat "$TMP/err")"
			unmount_store "$TMP/mnt4"
		fi
		umount "$TMP/ro4"
		[ -z "${why:-}" ] || fail "$why"
	fi
fi
# ---- the commands to paste in ckptfs's messages name the mountpoint as one shell word: one
# with a space, a quote or a TAB, mounted, then dead (its daemon killed); each pasted command
# unmounts it (they named the path unquoted)
for name in 'mp_a b' "mp_a'q" $'mp_a\tb'; do
	mp=$TMP/$name
	mkdir -p "$mp"
	track_mount "$mp"
	"$BIN/ckptfs" "$store" "$mp" 2>"$TMP/err" || fail "mount on '$name': $(cat "$TMP/err")"
	out=$("$BIN/ckptfs" "$store" "$mp" 2>&1) && fail "a second mount on '$name' succeeded"
	cmd=$(sed -n 's/.* is already a ckptfs mount (unmount it with \(fusermount3 -u .*\))$/\1/p' <<<"$out")
	[ -n "$cmd" ] || fail "mounted '$name': no command to paste in: $out"
	bash -c "$cmd" 2>"$TMP/err" && ! is_mounted "$mp" ||
		fail "mounted '$name': pasting '$cmd' did not unmount it: $(cat "$TMP/err")"
	"$BIN/ckptfs" "$store" "$mp" -f 2>/dev/null &
	pid=$!
	for _ in $(seq 1 100); do is_mounted "$mp" && break; sleep 0.05; done
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
	out=$("$BIN/ckptfs" "$store" "$mp" 2>&1) && fail "a mount on the dead mount '$name' succeeded"
	cmd=$(sed -n 's/.*(a dead mount is still there: \(fusermount3 -u .*\))$/\1/p' <<<"$out")
	[ -n "$cmd" ] || fail "dead mount '$name': no command to paste in: $out"
	bash -c "$cmd" 2>"$TMP/err" && ! is_mounted "$mp" ||
		fail "dead mount '$name': pasting '$cmd' did not unmount it: $(cat "$TMP/err")"
done
echo "test_mount: ok"
