#!/usr/bin/env python3
"""tests/reliability/check_tree.py - read every file under a mount and compare with a reference.

usage: check_tree.py MNT REF [--expect-eio REL,...] [--lenient-metadata]

REF is a plain copy of the mount taken from the undamaged store. Every regular file of REF is
read through MNT. A read must give the reference bytes or fail; files named by --expect-eio
must fail with EIO. With --lenient-metadata (random damage anywhere in data.mdb), files built
from records rather than tensor bytes (JSON, CSV, .pt/.safetensors headers, .npy headers) that
differ are counted as "metadata", not as mismatches (history.csv rows emptied for a damaged
epoch, as the mount documents, are counted as "blanked"); since every record carries a CRC-32 the
count is expected to be 0, and the suites report it. A .npy whose header reads back equal but
whose tensor bytes differ is always a mismatch.
Prints "reads=N same=N eio=N errors=N mismatches=N metadata=N" and the first problems;
exit 1 on a mismatch, an unexpected error, a missing EIO, or a dead mount (ENOTCONN).
"""
import errno
import os
import sys


def npy_split(raw):
    if raw[:6] != b"\x93NUMPY" or len(raw) < 10:
        return raw, b""
    n = 10 + int.from_bytes(raw[8:10], "little")
    return raw[:n], raw[n:]


def history_blanked(got, want):
    """history.csv differs from the reference only in rows emptied for damaged epochs: such a
    row keeps its epoch and has every other field empty (the mount's documented behaviour)."""
    g, w = got.split(b"\n"), want.split(b"\n")
    if len(g) != len(w) or g[0] != w[0]:
        return False
    for gl, wl in zip(g, w):
        if gl == wl:
            continue
        epoch = wl.split(b",", 1)[0]
        # the row of a damaged record: its epoch and every other field empty; a damaged key
        # gives that row another epoch number (the mount logs it, ckpt verify names it)
        if gl != epoch + b"," * wl.count(b",") and not (
                gl.split(b",", 1)[0].isdigit() and gl.endswith(b"," * wl.count(b","))
                and gl.count(b",") == wl.count(b",")):
            return False
    return True


def main():
    mnt, ref = sys.argv[1], sys.argv[2]
    expect_eio, lenient = set(), False
    args = sys.argv[3:]
    while args:
        a = args.pop(0)
        if a == "--expect-eio":
            expect_eio = {p for p in args.pop(0).split(",") if p}
        elif a == "--lenient-metadata":
            lenient = True
    counts = dict(reads=0, same=0, eio=0, errors=0, mismatches=0, metadata=0, blanked=0)
    problems = []
    notes = []
    for d, _, files in os.walk(ref):
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(d, name), ref)
            want = open(os.path.join(ref, rel), "rb").read()
            counts["reads"] += 1
            try:
                with open(os.path.join(mnt, rel), "rb") as f:
                    got = f.read()
            except OSError as e:
                if e.errno == errno.ENOTCONN:
                    problems.append(f"{rel}: the mount died (ENOTCONN)")
                    counts["errors"] += 1
                elif e.errno == errno.EIO:
                    counts["eio"] += 1
                elif lenient and e.errno in (errno.ENOENT, errno.ENOMEM, errno.EINVAL, errno.ERANGE):
                    counts["errors"] += 1  # a damaged record hides the node: an error, not bytes
                else:
                    counts["errors"] += 1
                    problems.append(f"{rel}: unexpected error {e.strerror}")
                continue
            if rel in expect_eio:
                problems.append(f"{rel}: read without error although its bytes are damaged")
                counts["mismatches"] += got != want
                continue
            if got == want:
                counts["same"] += 1
                continue
            if lenient:
                if rel == "history.csv" and history_blanked(got, want):
                    counts["blanked"] += 1  # a damaged epoch's row, emptied as documented
                    continue
                if rel.endswith(".npy"):
                    (gh, gp), (wh, wp) = npy_split(got), npy_split(want)
                    if gh == wh and gp != wp:
                        counts["mismatches"] += 1
                        problems.append(f"{rel}: tensor bytes differ without an error")
                        continue
                counts["metadata"] += 1
                notes.append(f"{rel}: metadata differs without an error ({len(got)} vs {len(want)} bytes)")
                continue
            counts["mismatches"] += 1
            problems.append(f"{rel}: bytes differ without an error ({len(got)} vs {len(want)})")
    for rel in sorted(expect_eio):
        if not os.path.exists(os.path.join(ref, rel)):
            problems.append(f"{rel}: not in the reference tree")
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    for p in problems[:10] + notes[:10]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
