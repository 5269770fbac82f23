"""tests/lib/ckpt_torch.py - what the Python tests and benchmarks share: the PyTorch twin of
ckpt-train's model and a reader of the IDX data sets it trains on.

Import it with sys.path.insert(0, <this directory>); it needs torch and numpy.
"""
import gzip
import os

import numpy as np
import torch


class MLP(torch.nn.Module):
    """nn.Linear layers fc1..fcN with a ReLU between them: the module a ckpt-train state_dict
    loads into with load_state_dict(strict=True)."""

    def __init__(self, sizes):
        super().__init__()
        self.n = len(sizes) - 1
        for i in range(self.n):
            setattr(self, "fc%d" % (i + 1), torch.nn.Linear(sizes[i], sizes[i + 1]))
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        for i in range(1, self.n + 1):
            x = getattr(self, "fc%d" % i)(x)
            if i < self.n:
                x = self.relu(x)
        return x


def read_idx(path):
    """The IDX file PATH (or PATH.gz) as a uint8 array of its shape; FileNotFoundError if
    neither exists."""
    for candidate in (path, path + ".gz"):
        if os.path.exists(candidate):
            with (gzip.open if candidate.endswith(".gz") else open)(candidate, "rb") as f:
                data = f.read()
            ndim = data[3]
            dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
            return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)
    raise FileNotFoundError("%s (nor %s.gz)" % (path, path))


def load_idx_split(directory, split):
    """Images of SPLIT ("train" or "t10k") flattened and scaled to [0, 1] as ckpt-train does
    (float32 / 255), and labels as int64, both as tensors."""
    images = read_idx(os.path.join(directory, split + "-images-idx3-ubyte"))
    labels = read_idx(os.path.join(directory, split + "-labels-idx1-ubyte"))
    x = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64))
