#!/usr/bin/env python3
"""tests/integration/mount_pinned.py - more held files of deleted epochs than reader slots.

usage: mount_pinned.py MNT STORE BIN_DIR MKSTORE_MANY COUNT

A writer with --keep-last 3 (mkstore_many --stdin) commits one epoch per line; after each
commit this opens that epoch's model.safetensors through a mount (ckptfs -f, log in MNT.log)
and keeps it open, COUNT times. Retention deletes each held file's epoch three commits later,
so each keeps a read snapshot of its own: more than the store's lock file has slots (1,024).
The mount must never fail with EAGAIN: past its share of the slots it shows the newest
snapshot it holds (new epochs are then missing, and so ENOENT), says so in one log line, and
leaves slots for other processes (ckpt info works). Every held file reads its epoch's bytes.
Once they are closed, the next commit shows again.
"""
import os
import resource
import subprocess
import sys
import time


def main():
    mnt, store, bindir, mkstore, count = sys.argv[1:5] + [int(sys.argv[5])]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256 if hard == resource.RLIM_INFINITY else min(count + 256, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    ckpt = os.path.join(bindir, "ckpt")
    writer = subprocess.Popen([mkstore, store, "--epochs", str(count + 2), "--keep-last", "3",
                               "--stdin"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    log = open(mnt + ".log", "w")
    fs = None
    fds, first = {}, {}
    stale = 0
    try:
        deadline = time.time() + 10
        while subprocess.run([ckpt, "info", store], capture_output=True).returncode != 0:
            assert time.time() < deadline and writer.poll() is None, "the writer made no store"
            time.sleep(0.01)
        fs = subprocess.Popen([os.path.join(bindir, "ckptfs"), "-f", store, mnt], stderr=log)
        deadline = time.time() + 10
        while not os.path.ismount(mnt):
            assert time.time() < deadline and fs.poll() is None, "ckptfs did not mount"
            time.sleep(0.01)

        def commit():
            writer.stdin.write(b"\n")
            writer.stdin.flush()
            return writer.stdout.readline().decode().split()[1]

        for _ in range(count):
            name = "epoch-%04d" % int(commit())
            # the mount shows a commit within a moment, unless it holds its share of slots
            deadline = time.time() + (0.05 if stale else 5)
            while True:
                try:
                    fd = os.open(os.path.join(mnt, name, "model.safetensors"), os.O_RDONLY)
                    break
                except FileNotFoundError:
                    if time.time() > deadline:
                        fd = None
                        break
                    time.sleep(0.002)
            if fd is None:
                stale += 1
                assert len(fds) > 800, f"{name} not shown with only {len(fds)} files held"
                if stale == 10:
                    break
                continue
            fds[name] = fd
            first[name] = os.pread(fd, 1 << 20, 0)
        assert stale > 0, f"{count} held snapshots never reached the mount's share of slots"
        # with all of them held: no EAGAIN anywhere, and slots left for other processes
        os.listdir(mnt)
        os.readlink(os.path.join(mnt, "latest"))
        os.stat(os.path.join(mnt, "history.csv"))
        info = subprocess.run([ckpt, "info", store], capture_output=True, text=True)
        assert info.returncode == 0, f"ckpt info with the mount's snapshots held: {info.stderr}"
        for name, fd in fds.items():
            assert os.pread(fd, 1 << 20, 0) == first[name], f"{name}: a held file changed"
        for fd in fds.values():
            os.close(fd)
        fds = {}
        name = "epoch-%04d" % int(commit())
        deadline = time.time() + 10
        while os.readlink(os.path.join(mnt, "latest")) != name:
            assert time.time() < deadline, "the newest commit never showed after closing"
            time.sleep(0.01)
    finally:
        for fd in fds.values():
            os.close(fd)
        writer.stdin.close()
        writer.wait()
        if fs:
            subprocess.run(["fusermount3", "-u", mnt])
            fs.wait()
        log.close()
    lines = [l for l in open(mnt + ".log") if "this mount holds" in l]
    assert len(lines) == 1, f"logged {len(lines)} times: {lines[:3]}"
    print(f"mount_pinned: {len(first)} files held across retention, {stale} commits shown late, "
          "no EAGAIN, ckpt info works, one log line")


if __name__ == "__main__":
    main()
