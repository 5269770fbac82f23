#!/usr/bin/env python3
"""tests/integration/mount_live.py - watch a ckptfs mount while a writer commits epochs.

usage: mount_live.py MNT WRITER_PID SECONDS

Polls the root listing and `best`/`latest` every 50 ms until the writer exits (or SECONDS pass).
Meanwhile it opens epoch-0001/model/fc1.weight.npy as soon as it exists, reads half of it, and
reads the rest after retention has deleted epoch-0001 (the open file keeps its snapshot).
Asserts that new epochs and a moving `best` were seen while the writer ran, and that
`history.csv`'s st_size always matched what a read of it returned (when two stats around the
read agree: a commit in between changes the size; a cached stale size never does).
"""
import os
import sys
import time

import numpy as np


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of the shell still answers kill 0: look at its state
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def main():
    mnt, pid, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    counts, bests, latests = set(), set(), set()
    held = None  # (file, first half, total size)
    deleted_read = False
    hist_checks, hist_stale = 0, []
    end = time.time() + limit
    while alive(pid) and time.time() < end:
        names = os.listdir(mnt)
        epochs = sorted(n for n in names if n.startswith("epoch-"))
        counts.add(epochs[-1] if epochs else None)
        if os.path.lexists(os.path.join(mnt, "best")):
            bests.add(os.readlink(os.path.join(mnt, "best")))
        if os.path.lexists(os.path.join(mnt, "latest")):
            latests.add(os.readlink(os.path.join(mnt, "latest")))
        hist = os.path.join(mnt, "history.csv")
        if os.path.exists(hist):
            before = os.stat(hist).st_size
            with open(hist, "rb") as h:
                got = len(h.read())
            if os.stat(hist).st_size == before:
                hist_checks += 1
                if got != before:
                    hist_stale.append((before, got))
        path = os.path.join(mnt, "epoch-0001", "model", "fc1.weight.npy")
        if held is None and "epoch-0001" in epochs:
            f = open(path, "rb")
            size = os.fstat(f.fileno()).st_size
            held = (f, f.read(size // 2), size)
        if held and not deleted_read and "epoch-0001" not in epochs:
            # the watcher invalidates the cached dentry: a deleted epoch stops stat'ing soon
            gone_by = time.time() + 1.5
            while os.path.exists(os.path.join(mnt, "epoch-0001")):
                assert time.time() < gone_by, "deleted epoch-0001 still stats after 1.5 s"
                time.sleep(0.05)
            f, first, size = held
            rest = f.read()
            assert len(first) + len(rest) == size, "open file lost bytes after deletion"
            arr = np.load(__import__("io").BytesIO(first + rest))
            assert arr.ndim == 2, arr.shape
            deleted_read = True
        time.sleep(0.05)
    assert not alive(pid), f"writer still running after {limit} s"
    print(f"mount_live: saw {len(counts)} distinct newest epochs, bests {sorted(bests)}, "
          f"latest values {len(latests)}, read a deleted epoch's open file: {deleted_read}")
    assert len(counts) >= 3, f"new epochs did not show up while training: {counts}"
    assert len(latests) >= 3, f"latest did not move: {latests}"
    assert len(bests) >= 2, f"best did not move: {bests}"
    assert held is not None, "never saw epoch-0001"
    assert hist_checks >= 10, f"history.csv checked only {hist_checks} times"
    assert not hist_stale, (f"history.csv: st_size != bytes read in {len(hist_stale)} of "
                            f"{hist_checks} checks (size, read): {hist_stale[:5]}")
    assert deleted_read, "epoch-0001 was never deleted by retention while held open"


if __name__ == "__main__":
    main()
