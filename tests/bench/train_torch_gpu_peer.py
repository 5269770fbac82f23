"""tests/bench/train_torch_gpu_peer.py - the PyTorch peer of bench_gpu.sh

The same MLP (nn.Linear fc1..fcN, ReLU, cross-entropy), SGD (lr 0.1, momentum 0.9), batch size
and data as ckpt-train on the GPU: the data set resident on the device, batches gathered by index
(no DataLoader), a validation and a test pass per epoch, and, unless --no-save, torch.save of
{'model': state_dict, 'optimizer': state_dict, 'epoch': n} into DIR/checkpoint-N.pt every epoch,
flushed to disk (fsync), as the PyTorch tutorial's checkpoint loop does. Data: Fashion-MNIST IDX
files, or, when DATA is "synthetic", random data of the size of ckpt-train's synthetic set
(train/data.h: 10000 training and 2000 test samples), so both sides do the same work.
usage: python3 train_torch_gpu_peer.py DATA LAYERS BATCH EPOCHS DIR [--val-split N] [--no-save]
(--val-split: the last N training samples validate, as ckpt-train's; default 5000)
prints one line per epoch: "epoch N seconds S" and at the end "steady_epoch_seconds S" (median of
epochs 2..N: the first pays CUDA's and cuBLAS's warm-up)
"""
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ckpt_torch import MLP, load_idx_split  # noqa: E402


def main():
    data, layers, batch, epochs, out_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    save = "--no-save" not in sys.argv[6:]
    val = 5000
    if "--val-split" in sys.argv[6:]:
        val = int(sys.argv[sys.argv.index("--val-split") + 1])
    dev = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 GEMMs, as ckpt-train computes them
    sizes = [int(s) for s in layers.split(",")]
    if data == "synthetic":
        g = torch.Generator().manual_seed(0)
        x = torch.rand(10000, sizes[0], generator=g)  # TRAIN_SYNTHETIC_TRAIN
        y = torch.randint(0, sizes[-1], (10000,), generator=g)
        tx = torch.rand(2000, sizes[0], generator=g)  # TRAIN_SYNTHETIC_TEST
        ty = torch.randint(0, sizes[-1], (2000,), generator=g)
    else:
        x, y = load_idx_split(data, "train")
        tx, ty = load_idx_split(data, "t10k")
    x, y, tx, ty = x.to(dev), y.to(dev), tx.to(dev), ty.to(dev)
    n_fit = x.shape[0] - val
    model = MLP(sizes).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.manual_seed(0)
    times = []
    for epoch in range(1, epochs + 1):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        perm = torch.randperm(n_fit, device=dev)
        loss_sum = 0.0
        for off in range(0, n_fit, batch):
            i = perm[off:off + batch]
            opt.zero_grad()
            loss = F.cross_entropy(model(x[i]), y[i])
            loss.backward()
            opt.step()
            loss_sum += loss.item()  # ckpt-train checks every batch's loss too
        with torch.no_grad():
            for xs, ys in ((x[n_fit:], y[n_fit:]), (tx, ty)):
                correct = 0
                for off in range(0, xs.shape[0], 1024):
                    o = model(xs[off:off + 1024])
                    F.cross_entropy(o, ys[off:off + 1024])
                    correct += int((o.argmax(1) == ys[off:off + 1024]).sum())
        if save:
            path = os.path.join(out_dir, "checkpoint-%d.pt" % epoch)
            with open(path, "wb") as f:
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}, f)
                f.flush()
                os.fsync(f.fileno())
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        print("epoch %d seconds %.4f" % (epoch, times[-1]), flush=True)
    steady = statistics.median(times[1:]) if len(times) > 1 else times[0]
    print("steady_epoch_seconds %.4f" % steady)


main()
