"""tests/bench/train_torch_peer.py - the PyTorch peer of bench_train.sh

One epoch of the same MLP (nn.Linear fc1..fcN, ReLU, cross-entropy), the same data
(Fashion-MNIST IDX files, pixels / 255, the last VAL samples validate), batch size, SGD
settings and thread count as ckpt-train, followed by the same validation and test passes.
Data loading is not timed; batches are gathered from in-memory tensors (no DataLoader
workers), which is the fastest plain-PyTorch loop.
usage: python3 train_torch_peer.py DATA_DIR LAYERS BATCH THREADS VAL
prints: "epoch_seconds S test_acc A"
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ckpt_torch import MLP, load_idx_split  # noqa: E402


def main():
    data_dir, layers, batch, threads, val = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    sizes = [int(s) for s in layers.split(",")]
    x, y = load_idx_split(data_dir, "train")
    tx, ty = load_idx_split(data_dir, "t10k")
    n_fit = x.shape[0] - val
    model = MLP(sizes)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    perm = torch.randperm(n_fit)
    for off in range(0, n_fit, batch):
        idx_ = perm[off:off + batch]
        opt.zero_grad()
        loss = F.cross_entropy(model(x[idx_]), y[idx_])
        loss.backward()
        opt.step()
    with torch.no_grad():
        for xs, ys in ((x[n_fit:], y[n_fit:]), (tx, ty)):
            correct = 0
            for off in range(0, xs.shape[0], 1024):
                out = model(xs[off:off + 1024])
                F.cross_entropy(out, ys[off:off + 1024])
                correct += int((out.argmax(1) == ys[off:off + 1024]).sum())
            acc = correct / xs.shape[0]
    print("epoch_seconds %.4f test_acc %.4f" % (time.perf_counter() - t0, acc))


main()
