#!/usr/bin/env python3
"""tests/integration/mount_commits.py - files kept open across many commits share a snapshot.

usage: mount_commits.py MNT STORE BIN_DIR MKSTORE_MANY COUNT

A writer (mkstore_many --stdin) commits one epoch per line it reads; once it has created the
store, this mounts it on MNT (and unmounts it at the end). After each commit this
opens the new latest epoch's model.safetensors and keeps it open, COUNT times: more commits than
the store's lock file has reader slots (1,024). Each open file would hold its commit's snapshot;
the mount moves unchanged files onto the newest one, so opening never fails (EAGAIN), and with
all of them open `ls`, `ckpt info` and every descriptor's bytes (equal to a fresh read of its
epoch's file) still work.
"""
import os
import resource
import subprocess
import sys
import time


def main():
    mnt, store, bindir, mkstore, count = sys.argv[1:5] + [int(sys.argv[5])]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256
    if hard != resource.RLIM_INFINITY and hard < want:
        want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    writer = subprocess.Popen([mkstore, store, "--epochs", str(count + 1), "--stdin"],
                              stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    fds = {}
    mounted = False
    try:
        deadline = time.time() + 10
        while subprocess.run([os.path.join(bindir, "ckpt"), "info", store],
                             capture_output=True).returncode != 0:
            assert time.time() < deadline and writer.poll() is None, "the writer made no store"
            time.sleep(0.01)
        subprocess.run([os.path.join(bindir, "ckptfs"), store, mnt], check=True)
        mounted = True
        for i in range(1, count + 1):
            writer.stdin.write(b"\n")
            writer.stdin.flush()
            name = "epoch-%04d" % i
            deadline = time.time() + 10
            while True:
                try:
                    if os.readlink(os.path.join(mnt, "latest")) == name:
                        break
                except FileNotFoundError:
                    pass
                assert time.time() < deadline, f"{name} never became latest"
                time.sleep(0.001)
            fds[name] = os.open(os.path.join(mnt, name, "model.safetensors"), os.O_RDONLY)
        listed = [n for n in os.listdir(mnt) if n.startswith("epoch-")]
        assert len(listed) == count, f"ls shows {len(listed)} epochs, want {count}"
        info = subprocess.run([os.path.join(bindir, "ckpt"), "info", store], capture_output=True,
                              text=True)
        assert info.returncode == 0, f"ckpt info with {count} files open: {info.stderr}"
        for name, fd in fds.items():
            with open(os.path.join(mnt, name, "model.safetensors"), "rb") as f:
                want = f.read()
            got = os.pread(fd, len(want) + 1, 0)
            assert got == want, f"{name}: an open file reads other bytes than a fresh open"
    finally:
        for fd in fds.values():
            os.close(fd)
        writer.stdin.close()
        writer.wait()
        if mounted:
            subprocess.run(["fusermount3", "-u", mnt], check=True)
    print(f"mount_commits: {count} files open across {count} commits: opens, ls, ckpt info "
          "and every read work")


if __name__ == "__main__":
    main()
