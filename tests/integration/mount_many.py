#!/usr/bin/env python3
"""tests/integration/mount_many.py - thousands of open files do not use up the store's readers.

usage: mount_many.py MNT STORE BIN_DIR COUNT

Opens COUNT (more than the 1024 reader slots of the store's lock file) descriptors spread over
the mount's files and np.load(mmap_mode='r') arrays, then, with all of them open: lists the
mount, resolves `best`, runs `ckpt info` and trains one more epoch into the store (which the
mount shows). Finally every descriptor reads exactly the bytes a fresh read gives.
"""
import os
import resource
import subprocess
import sys

import numpy as np


def main():
    mnt, store, bindir, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256
    if hard != resource.RLIM_INFINITY and hard < want:
        want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    files = []
    for epoch in sorted(e for e in os.listdir(mnt) if e.startswith("epoch-")):
        for root, _, names in os.walk(os.path.join(mnt, epoch)):
            files += [os.path.join(root, n) for n in sorted(names)]
    assert files, "no files on the mount"
    expect = {p: open(p, "rb").read() for p in files}
    fds = []
    for i in range(count):
        p = files[i % len(files)]
        try:
            fds.append((p, os.open(p, os.O_RDONLY)))
        except OSError as e:
            raise AssertionError(f"open #{i + 1} of {p}: {e}")
    npys = [p for p in files if p.endswith(".npy")]
    arrays = [np.load(npys[i % len(npys)], mmap_mode="r") for i in range(200)]
    listing = os.listdir(mnt)
    assert "best" in listing and "latest" in listing, listing
    os.readlink(os.path.join(mnt, "best"))
    run = subprocess.run([os.path.join(bindir, "ckpt"), "info", store], capture_output=True,
                         text=True)
    assert run.returncode == 0, f"ckpt info with {count} open files: {run.stderr.strip()}"
    before = len([e for e in listing if e.startswith("epoch-")])
    run = subprocess.run([os.path.join(bindir, "ckpt-train"), "--store", store, "--resume",
                          "--epochs", str(before + 1), "--quiet", "--threads", "1"],
                         capture_output=True, text=True)
    assert run.returncode == 0, f"training with {count} open files: {run.stderr.strip()}"
    for p, fd in fds:
        got = os.pread(fd, len(expect[p]) + 1, 0)
        assert got == expect[p], f"{p}: an open descriptor reads other bytes"
        os.close(fd)
    for a, p in zip(arrays, (npys[i % len(npys)] for i in range(200))):
        assert np.array_equal(a, np.load(p)), p
    del arrays
    print(f"mount_many: {count} open files, then ls, readlink, ckpt info, one more epoch: ok")


if __name__ == "__main__":
    main()
