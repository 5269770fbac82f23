#!/usr/bin/env python3
"""tests/bench/bench_store_peer.py - the peer of bench_store: torch.save + fsync + rename.

Usage: bench_store_peer.py DIR MIB NTENSORS RUN
Saves a dict of NTENSORS float32 tensors (MIB in all, fresh random bytes per RUN) to
DIR/peer.pt.tmp, fsyncs it and renames it to DIR/peer.pt, the usual safe-save recipe.
Prints "save_s <seconds> bytes <n>"; only the save, fsync and rename are timed.
"""
import os
import sys
import time

import torch


def main():
    if len(sys.argv) != 5:
        print("usage: bench_store_peer.py DIR MIB NTENSORS RUN", file=sys.stderr)
        return 2
    out_dir, mib, ntensors, run = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    per = (mib << 20) // ntensors // 4
    gen = torch.Generator().manual_seed(run)
    state = {f"layer{i}.weight": torch.rand(per, generator=gen) for i in range(ntensors)}
    tmp = os.path.join(out_dir, "peer.pt.tmp")
    final = os.path.join(out_dir, "peer.pt")
    t0 = time.monotonic()
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, final)
    t1 = time.monotonic()
    print(f"save_s {t1 - t0:.6f} bytes {per * 4 * ntensors}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
