"""tests/integration/train_torch_load.py - a ckpt-train checkpoint goes on training in PyTorch

Loads checkpoint.pt (exported by `ckpt export --format checkpoint`) the way the PyTorch
checkpointing tutorial does: model.load_state_dict(strict=True), optimizer.load_state_dict,
then checks the optimizer state and hyper-parameters and that one more step runs.
usage: python3 train_torch_load.py CHECKPOINT.pt LAYERS OPTIMIZER EPOCH
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ckpt_torch import MLP  # noqa: E402

path, layers, name, epoch = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sizes = [int(s) for s in layers.split(",")]


ck = torch.load(path, map_location="cpu")
model = MLP(sizes)
model.load_state_dict(ck["model"], strict=True)
cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
opt = cls(model.parameters(), lr=0.5)
opt.load_state_dict(ck["optimizer"])
assert ck["epoch"] == epoch, ck["epoch"]
group = opt.param_groups[0]
assert group["lr"] != 0.5, "param_groups were not restored"
assert set(group.keys()) >= set(cls(MLP(sizes).parameters(), lr=0.1).param_groups[0].keys()), group.keys()
state = opt.state_dict()["state"]
assert len(state) == 2 * (len(sizes) - 1), state.keys()
if name == "sgd":
    assert state[0]["momentum_buffer"].shape == model.fc1.weight.shape
else:
    assert float(state[0]["step"]) == ck["step"], (state[0]["step"], ck["step"])
    assert state[1]["exp_avg_sq"].shape == model.fc1.bias.shape
x = torch.rand(4, sizes[0])
y = torch.randint(0, sizes[-1], (4,))
opt.zero_grad()
F.cross_entropy(model(x), y).backward()
opt.step()
print("ok: %s checkpoint of epoch %d loads into torch %s and trains on" % (name, epoch, torch.__version__))
