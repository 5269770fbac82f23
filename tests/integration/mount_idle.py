#!/usr/bin/env python3
"""tests/integration/mount_idle.py - idle open files release their snapshot and come back.

usage: mount_idle.py MNT STORE CKPT_BINARY IDLE_SECONDS

Opens epoch-0001's and epoch-0003's fc1.weight.npy, reads a little, waits past the idle limit
(the daemon parks both), runs `ckpt gc --keep-last 1` (epoch 1 goes, 3 stays), drops the page
cache of both files, and reads on: epoch 3's file gives the same bytes as a fresh read,
epoch 1's fails with ESTALE instead of showing other bytes.
"""
import errno
import os
import subprocess
import sys
import time


def main():
    mnt, store, ckpt, idle = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    paths = [os.path.join(mnt, e, "model", "fc1.weight.npy") for e in ("epoch-0001", "epoch-0003")]
    expect3 = open(paths[1], "rb").read()
    fds = [os.open(p, os.O_RDONLY) for p in paths]
    for fd in fds:
        assert len(os.pread(fd, 64, 0)) == 64
    time.sleep(idle * 2.5)
    subprocess.run([ckpt, "gc", store, "--keep-last", "1", "--keep-top", "0"], check=True,
                   stdout=subprocess.DEVNULL)
    for fd in fds:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    got3 = os.pread(fds[1], len(expect3) + 10, 0)
    assert got3 == expect3, "epoch 3's parked file reads other bytes"
    try:
        os.pread(fds[0], 4096, 4096)
    except OSError as e:
        assert e.errno == errno.ESTALE, f"epoch 1: expected ESTALE, got {e}"
    else:
        raise AssertionError("epoch 1's parked file still reads after its epoch was deleted")
    for fd in fds:
        os.close(fd)
    print("mount_idle: parked files resume when unchanged, ESTALE when deleted")


if __name__ == "__main__":
    main()
