#!/usr/bin/env python3
"""tests/reliability/reader.py - one reader looping over a live ckptfs mount.

usage: reader.py MNT STORE CKPT_BIN STOP_FILE SEED

Until STOP_FILE exists, over and over: list the root; read every file of `best/`, `latest/`
and a random epoch directory (each .npy, model.safetensors, model.pt, metrics.json); and
`ckpt cat` a random .npy. Each file is identified by the inode of the open file (epoch =
(ino >> 24) - 1, so a `best` that moves between lookup and open is no problem) and checked
against the CRC-32s that `ckpt show STORE EPOCH` reports (cached per epoch: a checkpoint never
changes): .npy payloads, every tensor slice of model.safetensors, every zip entry of model.pt
(testzip checks each against its CRC-32 recorded at commit time). ENOENT is allowed only for
an epoch that is gone from the root's listing made after the error (retention removed it), or
for `best`/`latest` while the store has no checkpoint; an ENOENT for an epoch still listed,
any other error or a wrong byte is counted and printed.
Prints one JSON line of counts at the end; exit 1 on errors or mismatches.
"""
import errno
import io
import json
import os
import random
import subprocess
import sys
import zipfile
import zlib

mnt, store, ckpt, stop, seed = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
rng = random.Random(seed)
counts = dict(loops=0, reads=0, bytes=0, verified=0, unverified=0, enoent=0, errors=0,
              mismatches=0, cat=0)
problems = []
crcs = {}  # epoch -> {tensor name as `ckpt show` prints it: crc}


def show(epoch):
    if epoch in crcs:
        return crcs[epoch]
    r = subprocess.run([ckpt, "show", store, str(epoch)], capture_output=True, text=True)
    if r.returncode != 0:
        return None  # deleted meanwhile
    table = {}
    for line in r.stdout.splitlines():
        f = line.split()
        table[f[0]] = int(f[-1], 16)
    crcs[epoch] = table
    return table


def problem(kind, text):
    counts[kind] += 1
    if len(problems) < 10:
        problems.append(text)


def check(rel, data, epoch):
    table = show(epoch)
    if table is None:
        counts["unverified"] += 1
        return
    base = os.path.basename(rel)
    if base.endswith(".npy"):
        name = base[:-4]
        if "/optimizer/" in "/" + rel:
            name = "optimizer/" + name
        hdr = 10 + int.from_bytes(data[8:10], "little")
        want = table.get(name)
        if want is None or zlib.crc32(data[hdr:]) != want:
            problem("mismatches", f"{rel} (epoch {epoch}): CRC-32 differs from ckpt show")
            return
    elif base == "model.safetensors":
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + n])
        for name, t in header.items():
            if name == "__metadata__":
                continue
            b, e = t["data_offsets"]
            if zlib.crc32(data[8 + n + b:8 + n + e]) != table.get(name):
                problem("mismatches", f"{rel} (epoch {epoch}): tensor {name} differs")
                return
    elif base == "model.pt":
        bad = zipfile.ZipFile(io.BytesIO(data)).testzip()
        if bad is not None:
            problem("mismatches", f"{rel} (epoch {epoch}): zip entry {bad} fails its CRC-32")
            return
    counts["verified"] += 1


def target(top):
    """The epoch directory `top` names now (itself, or where best/latest link), or None."""
    if top.startswith("epoch-"):
        return top
    try:
        return os.readlink(os.path.join(mnt, top))
    except OSError:
        return None


def enoent(rel, before):
    """An ENOENT for `rel`, whose top directory named `before` when the read began: allowed
    when that epoch (or the one best/latest names now) is gone from the root, or when
    best/latest named none (no checkpoint yet)."""
    top = rel.split("/")[0]
    names = {before, target(top)}
    try:
        listed = set(os.listdir(mnt))
    except OSError as e:
        problem("errors", f"root: {e.strerror}")
        return
    if None in names or any(n not in listed for n in names):
        counts["enoent"] += 1
    else:
        problem("errors", f"{rel}: ENOENT although {sorted(names)} is still listed")


def read_file(rel, before):
    path = os.path.join(mnt, rel)
    try:
        with open(path, "rb") as f:
            ino = os.fstat(f.fileno()).st_ino
            data = f.read()
    except OSError as e:
        if e.errno == errno.ENOENT:
            enoent(rel, before)
        else:
            problem("errors", f"{rel}: {e.strerror}")
        return
    counts["reads"] += 1
    counts["bytes"] += len(data)
    check(rel, data, (ino >> 24) - 1)


def read_dir(top):
    before = target(top)
    try:
        files = ["model.safetensors", "model.pt", "metrics.json"]
        for sub in ("model", "optimizer"):
            files += [f"{sub}/{n}" for n in os.listdir(os.path.join(mnt, top, sub)) if n.endswith(".npy")]
    except OSError as e:
        if e.errno != errno.ENOENT:
            problem("errors", f"{top}: {e.strerror}")
        else:
            enoent(top, before)
        return
    for f in files:
        read_file(f"{top}/{f}", before)


while not os.path.exists(stop):
    counts["loops"] += 1
    try:
        epochs = [n for n in os.listdir(mnt) if n.startswith("epoch-")]
    except OSError as e:
        problem("errors", f"root: {e.strerror}")
        break
    for e in epochs:
        show(int(e[6:]))  # remember the CRCs while the epoch exists
    tops = ["best", "latest"] + ([rng.choice(epochs)] if epochs else [])
    for top in tops:
        read_dir(top)
    if epochs:
        e = rng.choice(epochs)
        name = rng.choice(["fc1.weight", "fc1.bias", "fc2.weight"])
        r = subprocess.run([ckpt, "cat", store, f"{e}/model/{name}.npy"], capture_output=True)
        if r.returncode == 0:
            counts["cat"] += 1
            counts["reads"] += 1
            check(f"{e}/model/{name}.npy", r.stdout, int(e[6:]))
        elif b"No such file" in r.stderr or b"not stored" in r.stderr or b"no such" in r.stderr.lower():
            enoent(e, e)
        else:
            problem("errors", f"ckpt cat {e}/model/{name}.npy: {r.stderr.decode().strip()}")

print(json.dumps(counts))
for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if counts["errors"] or counts["mismatches"] else 0)
