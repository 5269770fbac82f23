#!/usr/bin/env python3
"""tests/reliability/corrupt.py - damage a store's data.mdb on purpose.

usage:
  corrupt.py tensor DATA_MDB NPY_FILE [SEED]   flip one byte inside the stored bytes of the tensor
                                               whose .npy (read before) is NPY_FILE; every copy
  corrupt.py random DATA_MDB COUNT SEED        flip COUNT random bytes anywhere in the file
  corrupt.py truncate DATA_MDB FRACTION        cut the file to FRACTION of its length
  corrupt.py garbage DATA_MDB SEED             replace the whole file by random bytes
Prints what it changed (offsets) on one line; exit 1 if the tensor's bytes are not found.
"""
import random
import sys


def npy_payload(path):
    raw = open(path, "rb").read()
    assert raw[:6] == b"\x93NUMPY", path
    return raw[10 + int.from_bytes(raw[8:10], "little"):]


def main():
    mode, db_path = sys.argv[1], sys.argv[2]
    db = bytearray(open(db_path, "rb").read())
    if mode == "tensor":
        data = npy_payload(sys.argv[3])
        rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 0)
        # a window of the tensor's bytes that occurs in data.mdb; prefer one that occurs once
        width = min(64, len(data))
        offsets = []
        for _ in range(50):
            start = rng.randrange(0, len(data) - width + 1)
            needle = bytes(data[start:start + width])
            if len(set(needle)) < 4 and len(data) > width:
                continue  # zeros and constants are everywhere
            pos = db.find(needle)
            while pos >= 0:
                offsets.append(pos + rng.randrange(width))
                pos = db.find(needle, pos + 1)
            if offsets:
                break
        if not offsets:
            print(f"corrupt.py: bytes of {sys.argv[3]} not found in {db_path}", file=sys.stderr)
            return 1
        for off in offsets:
            db[off] ^= 0x5A
    elif mode == "random":
        rng = random.Random(int(sys.argv[4]))
        offsets = [rng.randrange(len(db)) for _ in range(int(sys.argv[3]))]
        for off in offsets:
            db[off] ^= 1 << rng.randrange(8)
    elif mode == "truncate":
        offsets = [int(len(db) * float(sys.argv[3]))]
        db = db[:offsets[0]]
    elif mode == "garbage":
        rng = random.Random(int(sys.argv[3]))
        db = bytearray(rng.randbytes(len(db)))
        offsets = [0]
    else:
        print(f"corrupt.py: unknown mode {mode}", file=sys.stderr)
        return 2
    with open(db_path, "wb") as f:
        f.write(db)
    print(" ".join(str(o) for o in offsets[:16]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
