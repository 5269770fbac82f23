# tests/integration/fuse_lib.sh - whether FUSE mounts can be made here (sourced by lib.sh and
# mount_lib.sh, not run)
#
#   fuse_unusable    prints why no mount can be made here (nothing, status 1, when one can).
#                    /dev/fuse is tested to be a character device before it is opened: opening
#                    a missing /dev/fuse read-write from the shell (3<>) would create a file
#   require_fuse     mount tests need FUSE: without it, fail in CI (CI=true), skip (77) elsewhere

fuse_unusable() {
	if [ ! -c /dev/fuse ]; then
		echo "/dev/fuse does not exist"
	elif ! command -v fusermount3 >/dev/null; then
		echo "fusermount3 is not installed"
	elif ! (exec 3<>/dev/fuse) 2>/dev/null; then
		echo "/dev/fuse cannot be opened by $(id -un)"
	else
		return 1
	fi
}

require_fuse() {
	local why
	if why=$(fuse_unusable); then
		if [ "${CI:-}" = true ]; then
			echo "FAIL: $why: the mount tests cannot run (CI=true, so this is a failure)" >&2
			exit 1
		fi
		echo "SKIP: $why" >&2
		exit 77
	fi
	[ -x "$BIN/ckptfs" ] || fail "build/bin/ckptfs is missing (run make)"
}
