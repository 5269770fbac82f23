"""tests/integration/train_torch_step.py - ckpt-train's optimizers against torch.optim

For each optimizer configuration: random nn.Linear weights (fc1, fc2, fc3) and one batch,
three optimizer steps on that batch in torch and in the engine (build/tests/tools/train_step);
the first loss, the parameters and every optimizer state buffer must agree within 1e-5.
usage: python3 train_torch_step.py TOOL WORKDIR
"""
import os
import struct
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ckpt_torch import MLP  # noqa: E402

TOOL, WORK = sys.argv[1], sys.argv[2]
SIZES = [20, 16, 12, 5]
ROWS, STEPS, TOL = 8, 3, 1e-5

CONFIGS = [
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.01)),
    ("sgd", dict(lr=0.05, momentum=0.9, dampening=0.1, nesterov=False, weight_decay=0.001)),
    ("sgd", dict(lr=0.1, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0)),
    ("adam", dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)),
    ("adam", dict(lr=0.003, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.01)),
    ("adamw", dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)),
]


def main():
    torch.manual_seed(7)
    failures = 0
    for case, (name, hp) in enumerate(CONFIGS):
        model = MLP(SIZES)
        x = torch.rand(ROWS, SIZES[0])
        y = torch.randint(0, SIZES[-1], (ROWS,), dtype=torch.int64)
        params = [p.detach().numpy().astype("<f4").tobytes() for p in model.state_dict().values()]
        path_in, path_out = "%s/in%d.bin" % (WORK, case), "%s/out%d.bin" % (WORK, case)
        with open(path_in, "wb") as f:
            f.write(b"TSTP" + struct.pack("<I", len(SIZES)) + struct.pack("<%dI" % len(SIZES), *SIZES))
            f.write(struct.pack("<II", ROWS, STEPS))
            for p in params:
                f.write(p)
            f.write(x.numpy().astype("<f4").tobytes())
            f.write(y.numpy().astype("<i4").tobytes())
        betas = hp.get("betas", (0.9, 0.999))
        args = [TOOL, path_in, path_out, name, repr(hp["lr"]), repr(hp.get("momentum", 0.0)),
                repr(hp.get("dampening", 0.0)), "1" if hp.get("nesterov") else "0",
                repr(hp["weight_decay"]), repr(betas[0]), repr(betas[1]), repr(hp.get("eps", 1e-8))]
        subprocess.run(args, check=True)

        opt = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name](
            model.parameters(), **hp)
        first_loss = None
        for _ in range(STEPS):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            if first_loss is None:
                first_loss = loss.item()
            loss.backward()
            opt.step()

        raw = open(path_out, "rb").read()
        off = 0
        c_loss = struct.unpack_from("<d", raw, off)[0]
        off += 8
        worst, where = abs(c_loss - first_loss), "loss"
        names = list(model.state_dict().keys())
        tensors = list(model.state_dict().values())
        for pname, t in zip(names, tensors):
            n = t.numel()
            mine = np.frombuffer(raw, "<f4", n, off).reshape(t.shape)
            off += 4 * n
            d = float(np.max(np.abs(mine - t.numpy())))
            if d > worst:
                worst, where = d, pname
        state = opt.state_dict()["state"]
        buffers = ["momentum_buffer"] if name == "sgd" else ["exp_avg", "exp_avg_sq"]
        for i, (pname, t) in enumerate(zip(names, tensors)):
            for b in buffers:
                ref = state[i].get(b)
                if ref is None:
                    continue
                n = t.numel()
                mine = np.frombuffer(raw, "<f4", n, off).reshape(t.shape)
                off += 4 * n
                d = float(np.max(np.abs(mine - ref.numpy())))
                if d > worst:
                    worst, where = d, "%s.%s" % (pname, b)
        steps = struct.unpack_from("<d", raw, off)[0]
        off += 8
        if off != len(raw):
            print("case %d %s: output has %d bytes, expected %d" % (case, name, len(raw), off))
            failures += 1
            continue
        if name != "sgd" and float(state[0]["step"]) != steps:
            print("case %d %s: step %g vs torch %g" % (case, name, steps, float(state[0]["step"])))
            failures += 1
        ok = worst <= TOL
        print("%s %s %s: max |diff| %.3g (%s)" % ("ok" if ok else "FAIL", name, hp, worst, where))
        failures += not ok
    sys.exit(1 if failures else 0)


main()
