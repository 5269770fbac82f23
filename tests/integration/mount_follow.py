#!/usr/bin/env python3
"""tests/integration/mount_follow.py - an open history.csv follows appended rows.

usage: mount_follow.py grow|idle|retain MNT CKPT STORE -- TRAINER_COMMAND...

Opens MNT/history.csv and reads it to its end (b''), runs the trainer, then reads on from
the same descriptor. grow: the rows appended since (with `best` moved: an old row's flag
flipped) come back, exactly `ckpt cat STORE history.csv` past the old size; a second
descriptor polled while the trainer runs only ever gets whole rows, each the final file's row
but for its `best` flag. idle: grow, but the descriptor sits idle for 3 s before the trainer
starts (mounted with -o snapshot_idle=1, its snapshot is given up meanwhile). retain: rows were deleted, so the descriptor keeps its version: reads
at its end give b'' and a read from 0 gives the old bytes, never torn ones.
"""
import os
import subprocess
import sys
import time


def read_to_end(fd):
    out = b""
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return out
        out += chunk


def same_but_best(a, b):
    """Rows a and b (bytes, without newline) differ at most in their last field, 0 or 1."""
    if a == b:
        return True
    return (a[:-1] == b[:-1] and a[-2:-1] == b"," and a[-1:] in (b"0", b"1")
            and b[-1:] in (b"0", b"1"))


def main():
    mode, mnt, ckpt, store = sys.argv[1:5]
    assert sys.argv[5] == "--"
    trainer = sys.argv[6:]
    hist = os.path.join(mnt, "history.csv")
    fd = os.open(hist, os.O_RDONLY)
    old = read_to_end(fd)
    assert old.endswith(b"\n") and old.count(b"\n") >= 2, old
    poll = os.open(hist, os.O_RDONLY)
    polled, chunks = read_to_end(poll), 0
    if mode == "idle":
        time.sleep(3)
    proc = subprocess.Popen(trainer)
    # the follower reads at its end while the trainer runs and after, until it has every row
    # (a loaded machine may run the whole training between two of its reads): 30 s at most
    new, deadline = None, None
    while True:
        chunk = os.read(poll, 1 << 20)
        if chunk:
            assert chunk.endswith(b"\n"), f"torn read while following: {chunk!r}"
            polled += chunk
            chunks += 1
        if new is None and proc.poll() is not None:
            assert proc.wait() == 0, "trainer failed"
            new = subprocess.run([ckpt, "cat", store, "history.csv"], check=True,
                                 capture_output=True).stdout
            deadline = time.monotonic() + 30
        if new is not None and (mode == "retain" or len(polled) >= len(new)
                                or time.monotonic() > deadline):
            break
        time.sleep(0.05)
    if mode == "retain":
        assert not new.startswith(old[:old.index(b"\n") + 1] + old.split(b"\n")[1]), \
            "retention deleted no row"
        assert os.pread(fd, 1 << 20, 0) == old, "the open file's version changed"
        read_to_end(fd)
        for _ in range(3):
            assert os.read(fd, 1 << 20) == b"", "a history.csv whose rows were deleted moved on"
        assert os.pread(fd, 1 << 20, 0) == old, "torn or moved bytes after retention"
        assert polled.startswith(old) and len(polled) >= len(old)
        print(f"mount_follow: retain ok ({len(old)} bytes kept, store now {len(new)})")
        return
    assert len(new) > len(old), "the trainer appended no row"
    flipped = [i for i, (a, b) in enumerate(zip(old.split(b"\n")[:-1], new.split(b"\n")))
               if a != b]
    assert flipped, "no best flag flipped: pick a run whose val_loss improves"
    for i in flipped:
        assert same_but_best(old.split(b"\n")[i], new.split(b"\n")[i]), (i, old, new)
    # it read to its end before: the next read there moves on
    got = read_to_end(fd)
    assert got == new[len(old):], f"after the commits: {got!r}\nwant {new[len(old):]!r}"
    assert os.fstat(fd).st_size == len(new), (os.fstat(fd).st_size, len(new))
    assert os.pread(fd, 1 << 20, 0) == new[:len(old)] + got, "moved file does not read the new version"
    polled += read_to_end(poll)
    polled += read_to_end(poll)
    prow, nrow = polled.split(b"\n"), new.split(b"\n")
    assert len(prow) == len(nrow), f"follower got {len(prow)} rows, store has {len(nrow)}"
    for a, b in zip(prow, nrow):
        assert same_but_best(a, b), (a, b)
    assert chunks >= 1, "the follower read no rows at its end"
    print(f"mount_follow: {mode} ok ({len(old)} -> {len(new)} bytes, {len(flipped)} best flips, "
          f"{chunks} chunks at its end)")


if __name__ == "__main__":
    main()
