#!/usr/bin/env python3
"""tests/integration/mount_access.py MOUNT - access(2) on a ckptfs mount answers as a local
read-only file system does, for whoever runs this (the owner, or root): every file readable and
not executable (0444), every directory readable and searchable (0555), best/latest followed to
their directories (and the links themselves, not followed, 0777), W_OK refused with EROFS.
Prints each wrong answer and exits 1 if there is one."""
import ctypes
import errno
import os
import sys

libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, AT_SYMLINK_NOFOLLOW = -100, 0x100


def answer(path, mode, follow=True):
    """0 or the errno of faccessat(path, mode)"""
    flags = 0 if follow else AT_SYMLINK_NOFOLLOW
    if libc.faccessat(AT_FDCWD, path.encode(), mode, flags) == 0:
        return 0
    return ctypes.get_errno()


def main():
    mnt = sys.argv[1]
    wrong = []

    def expect(path, mode, want, follow=True):
        got = answer(path, mode, follow)
        if got != want:
            name = {os.F_OK: "F_OK", os.R_OK: "R_OK", os.W_OK: "W_OK", os.X_OK: "X_OK"}[mode]
            wrong.append(f"{os.path.relpath(path, mnt)} {name}{'' if follow else ' (nofollow)'}: "
                         f"{os.strerror(got) if got else 'ok'}, wanted "
                         f"{os.strerror(want) if want else 'ok'}")

    seen = {"file": 0, "dir": 0, "link": 0}
    for top, dirs, files in os.walk(mnt):
        for name in [""] + dirs + files:
            p = os.path.join(top, name)
            is_link = os.path.islink(p)
            is_dir = os.path.isdir(p)  # a link: what it leads to
            seen["link" if is_link else "dir" if is_dir else "file"] += 1
            expect(p, os.F_OK, 0)
            expect(p, os.R_OK, 0)
            expect(p, os.W_OK, errno.EROFS)
            expect(p, os.X_OK, 0 if is_dir else errno.EACCES)
            if is_link:
                expect(p, os.R_OK, 0, follow=False)
                expect(p, os.X_OK, 0, follow=False)
    for p in ("best/metrics.json", "latest/model"):
        expect(os.path.join(mnt, p), os.X_OK, errno.EACCES if p.endswith(".json") else 0)
    if not all(seen.values()):
        wrong.append(f"the walk missed a kind of node: {seen}")
    for w in wrong[:20]:
        print(w)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
