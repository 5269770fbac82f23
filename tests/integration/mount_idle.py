#!/usr/bin/env python3
"""tests/integration/mount_idle.py - idle open files release their snapshot and come back.

usage: mount_idle.py MNT STORE CKPT_BINARY IDLE_SECONDS

The store has epochs 1-4. Opens epoch 1's, 2's and 4's fc1.weight.npy and reads a little;
`ckpt gc --keep-last 3` deletes epoch 1 at once. After the idle limit the daemon parks the
files of epochs 2 and 4, but not epoch 1's: its content is gone from the store, so it keeps
its snapshot. `ckpt gc --keep-last 1` then deletes epochs 2 and 3; the page cache of the files
is dropped and reads go on: epoch 1's and 4's files give the bytes they had, epoch 2's (parked,
then deleted) fails with ESTALE instead of showing other bytes.
"""
import errno
import os
import subprocess
import sys
import time


def main():
    mnt, store, ckpt, idle = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    paths = [os.path.join(mnt, e, "model", "fc1.weight.npy")
             for e in ("epoch-0001", "epoch-0002", "epoch-0004")]
    expect = [open(p, "rb").read() for p in paths]
    fds = [os.open(p, os.O_RDONLY) for p in paths]
    for fd in fds:
        assert len(os.pread(fd, 64, 0)) == 64
    metrics1 = os.path.join(mnt, "epoch-0001", "metrics.json")
    expect_metrics1 = open(metrics1, "rb").read()
    mfd = os.open(metrics1, os.O_RDONLY)
    gc = [ckpt, "gc", store, "--keep-top", "0", "--keep-last"]
    subprocess.run(gc + ["3"], check=True, stdout=subprocess.DEVNULL)
    # epoch 1 is gone from the store: fstat of its open files still answers (metrics.json's
    # attributes time out at once, so the kernel asks the daemon again)
    time.sleep(1)
    assert os.fstat(fds[0]).st_size == len(expect[0]), "fstat of an open file of a deleted epoch"
    assert os.fstat(mfd).st_size == len(expect_metrics1), "fstat of a deleted epoch's metrics.json"
    assert os.pread(mfd, len(expect_metrics1) + 10, 0) == expect_metrics1, "deleted metrics.json"
    os.close(mfd)
    assert not os.path.exists(metrics1), "a deleted epoch is still listed"
    time.sleep(idle * 2.5)
    subprocess.run(gc + ["1"], check=True, stdout=subprocess.DEVNULL)
    for fd in fds:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    for i in (0, 2):
        got = os.pread(fds[i], len(expect[i]) + 10, 0)
        assert got == expect[i], f"{paths[i]}: open file reads other bytes after idling"
    try:
        os.pread(fds[1], 4096, 4096)
    except OSError as e:
        assert e.errno == errno.ESTALE, f"epoch 2: expected ESTALE, got {e}"
    else:
        raise AssertionError("epoch 2's parked file still reads after its epoch was deleted")
    for fd in fds:
        os.close(fd)
    print("mount_idle: a deleted epoch's open file keeps reading; parked files resume when "
          "unchanged, ESTALE when deleted while parked")


if __name__ == "__main__":
    main()
