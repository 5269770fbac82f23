#!/usr/bin/env python3
"""tests/integration/mount_follow.py - an open history.csv follows appended rows.

usage: mount_follow.py grow|idle|retain|gc MNT CKPT STORE -- COMMAND...

Opens MNT/history.csv and reads it to its end (b''), runs the trainer, then reads on from
the same descriptor. grow: the rows appended since (with `best` moved: an old row's flag
flipped) come back, exactly `ckpt cat STORE history.csv` past the old size; a second
descriptor polled while the trainer runs only ever gets whole rows, each the final file's row
but for its `best` flag. idle: grow, but the descriptor sits idle for 3 s before the trainer
starts (mounted with -o snapshot_idle=1, its snapshot is given up meanwhile). retain (the
trainer with --keep-last) and gc (COMMAND is `ckpt gc`): rows were deleted, so reads at the
descriptor's end give b'' (never torn bytes), and a read again from 0 gives exactly the store's
history.csv now, as many bytes as fstat says. Every mode: a descriptor opened before COMMAND
and first read after it reads the version it was opened on, then, read again from 0, the
store's; grow and idle: an epoch's metrics.json kept open while best moves off it reads its
new bytes ("is_best": false) when read again from 0.
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
    late = os.open(hist, os.O_RDONLY)  # read only after the trainer
    # an epoch's metrics.json changes in place when best moves off it
    best = os.readlink(os.path.join(mnt, "best"))
    metrics = os.open(os.path.join(mnt, best, "metrics.json"), os.O_RDONLY)
    metrics_old = read_to_end(metrics)
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
        if new is not None and (mode in ("retain", "gc") or len(polled) >= len(new)
                                or time.monotonic() > deadline):
            break
        time.sleep(0.05)
    if mode in ("retain", "gc"):
        assert not new.startswith(old[:old.index(b"\n") + 1] + old.split(b"\n")[1]), \
            "retention deleted no row"
        # at its end it keeps its version: no torn bytes
        for _ in range(3):
            assert os.read(fd, 1 << 20) == b"", "a history.csv whose rows were deleted moved on"
        assert polled.startswith(old) and len(polled) >= len(old)
        # opened before, first read after: one version, the one it was opened on
        assert read_to_end(late) == old, "the first read after open switched versions"
        # read again from 0 (tail -f after "file truncated"): the store's bytes now, whole,
        # and as many as fstat says
        for f in (fd, late):
            os.lseek(f, 0, os.SEEK_SET)
            got = read_to_end(f)
            assert got == new, f"read again from 0: {got!r}\nwant {new!r}"
            assert os.fstat(f).st_size == len(got), (os.fstat(f).st_size, len(got))
        print(f"mount_follow: {mode} ok ({len(old)} bytes, read again from 0: {len(new)})")
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
    # the first read of one opened before the commits: its version; read again from 0: now
    assert read_to_end(late) == old, "the first read after open switched versions"
    assert os.pread(late, 1 << 20, 0) == new
    assert os.fstat(late).st_size == len(new)
    metrics_new = subprocess.run([ckpt, "cat", store, best + "/metrics.json"], check=True,
                                 capture_output=True).stdout
    assert metrics_new != metrics_old and b'"is_best": false' in metrics_new, metrics_new
    assert os.read(metrics, 1 << 20) == b"", "metrics.json moved at its end"
    assert os.pread(metrics, 1 << 20, 0) == metrics_new, "metrics.json read again from 0"
    assert os.fstat(metrics).st_size == len(metrics_new)
    print(f"mount_follow: {mode} ok ({len(old)} -> {len(new)} bytes, {len(flipped)} best flips, "
          f"{chunks} chunks at its end)")


if __name__ == "__main__":
    main()
