#!/usr/bin/env bash
# tests/integration/test_mount_rewinddir.sh - rewinddir() (lseek(dirfd, 0)) of a directory kept
# open refers to its current state, as POSIX says: Python's os.listdir(fd) (fdopendir and
# rewinddir on a dup) and programs that poll with rewinddir see epochs committed and deleted
# since the directory was opened, not the listing taken at opendir. One pass of readdir still
# reads one consistent listing.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse
trainer_usable || fail "build/bin/ckpt-train is missing or has no synthetic data (run make)"

make_store "$TMP/store" 2 && mount_store "$TMP/store" "$TMP/mnt"
"$PY" - "$BIN/ckpt-train" "$TMP/store" "$TMP/mnt" <<'PY' || fail "listings of a directory kept open"
import os, subprocess, sys, time
train, store, mnt = sys.argv[1:4]
def epochs(names):
    return sorted(n for n in names if n.startswith("epoch-"))
def resume(to, keep=None):
    extra = ["--keep-last", str(keep)] if keep else []
    subprocess.run([train, "--store", store, "--data", "synthetic", "--resume", "--epochs", str(to),
                    "--quiet", *extra], check=True, stdout=subprocess.DEVNULL)
fd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
first = epochs(os.listdir(fd))
assert first == ["epoch-0001", "epoch-0002"], first
resume(4)
got = epochs(os.listdir(fd))
assert got == ["epoch-0001", "epoch-0002", "epoch-0003", "epoch-0004"], f"after a commit: {got}"
entries = [e.name for e in os.scandir(fd)]  # scandir(fd) rewinds too
assert epochs(entries) == got, entries
resume(7, keep=2)  # retention deletes the older epochs
got, want = epochs(os.listdir(fd)), epochs(os.listdir(mnt))
assert got == want and "epoch-0001" not in got and "epoch-0007" in got, f"after deletions: {got}, a new open lists {want}"
os.close(fd)
PY
unmount_store "$TMP/mnt"
echo "test_mount_rewinddir: ok"
