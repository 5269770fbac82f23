#!/usr/bin/env python3
"""Write a PyTorch model and its optimizer into a store through libckpt (ctypes), as a Python
producer would, then check that `ckpt export --format checkpoint` gives back what
torch.save(optimizer.state_dict()) holds.

Usage: pt_libckpt_groups.py LIBCKPT_SO CKPT_BIN WORKDIR

Cases, each an AdamW trained two steps with one layer unused (it has no state):
  named     a model with a registered buffer that is no running statistic before its layers,
            groups in a decay/no-decay split (not the model's order) with "param_names": the
            file's optimizer state equals the optimizer's, key by key, and one more step from
            the loaded file equals one more step of the original optimizer.
  in_order  a model of parameters only, one group in model order, no names: equal too (the
            README's rule for unnamed groups).
  misnamed  as named, with one name misspelled, and with one group's names left out: the
            export fails in one line naming the problem and writes nothing (the rules' guess
            put another parameter's state on each index).
"""
import ctypes
import json
import os
import subprocess
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

LIB, CKPT, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
# arrays (nested, empty), an object in a list, an integer past 64 bits: checkpoint.pt's
# ck['run']['hyperparams'] must equal json.loads of this text (lists, not tuples)
HYPER = json.dumps({"lr": 1e-3, "layers": [6, 4, [1, 2]], "sched": {"milestones": [], "big": 2**70},
                    "groups": [{"wd": [0.1]}]})
lib = ctypes.CDLL(LIB)


class RunMeta(ctypes.Structure):
    _fields_ = [("model", ctypes.c_char_p), ("layers", ctypes.c_char_p),
                ("optimizer", ctypes.c_char_p), ("hyperparams", ctypes.c_char_p),
                ("dataset", ctypes.c_char_p), ("seed", ctypes.c_uint64),
                ("monitor", ctypes.c_char_p), ("monitor_mode", ctypes.c_int),
                ("created_ns", ctypes.c_int64)]


class StoreOptions(ctypes.Structure):
    _fields_ = [("chunk_size", ctypes.c_uint64), ("initial_map_size", ctypes.c_uint64),
                ("keep_last", ctypes.c_uint32), ("keep_top", ctypes.c_uint32),
                ("no_sync", ctypes.c_bool)]


GROUP_MODEL, GROUP_OPTIMIZER = 0, 1
DTYPE_FLOAT32 = 1


def ok(rc, what):
    if rc != 0:
        lib.ckpt_last_error.restype = ctypes.c_char_p
        sys.exit(f"FAIL: {what}: {rc}: {lib.ckpt_last_error()}")


def write_store(path, model, opt, groups_json):
    meta = RunMeta(model=b"net", layers=b"", optimizer=b"adamw",
                   hyperparams=HYPER.encode(), dataset=b"", seed=1,
                   monitor=b"val_loss", monitor_mode=0, created_ns=0)
    opts = StoreOptions(no_sync=True)
    store = ctypes.c_void_p()
    ok(lib.ckpt_store_create(ctypes.byref(store), path.encode(), ctypes.byref(meta),
                             ctypes.byref(opts)), "ckpt_store_create")
    w = ctypes.c_void_p()
    ok(lib.ckpt_writer_begin(ctypes.byref(w), store, ctypes.c_uint64(1)), "ckpt_writer_begin")
    keep = []  # the writer borrows the bytes until commit

    def put(name, t, group):
        t = t.detach().contiguous().to(torch.float32)
        keep.append(t)
        shape = (ctypes.c_uint64 * max(t.dim(), 1))(*t.shape)
        ok(lib.ckpt_writer_put_tensor(w, name.encode(), group, DTYPE_FLOAT32,
                                      ctypes.c_uint32(t.dim()), shape, None,
                                      ctypes.c_void_p(t.data_ptr()),
                                      ctypes.c_uint64(t.numel() * 4)), "put " + name)

    for name, t in model.state_dict().items():
        put(name, t, GROUP_MODEL)
    name_of = {id(p): n for n, p in model.named_parameters()}
    for p, st in opt.state.items():
        for buf in ("exp_avg", "exp_avg_sq"):
            put(f"{name_of[id(p)]}.{buf}", st[buf], GROUP_OPTIMIZER)
        put(f"{name_of[id(p)]}.step", st["step"].reshape(()), GROUP_OPTIMIZER)
    text = json.dumps(groups_json).encode()
    ok(lib.ckpt_writer_set_extra(w, b"optimizer.param_groups", text, ctypes.c_size_t(len(text))),
       "set_extra")
    ok(lib.ckpt_writer_set_extra(w, b"optimizer.name", b"adamw", ctypes.c_size_t(5)), "name")
    lib.ckpt_writer_set_step(w, ctypes.c_uint64(2))
    ok(lib.ckpt_writer_commit(w), "commit")
    lib.ckpt_store_close(store)


class Net(nn.Module):
    def __init__(self, buffer):
        super().__init__()
        self.register_buffer("pe", torch.arange(6.0) if buffer else None)
        self.fc1 = nn.Linear(6, 5)
        self.unused = nn.Linear(5, 5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x if self.pe is None else x + self.pe)))


def train_two_steps(model, opt, gen):
    for _ in range(2):
        opt.zero_grad()
        x = torch.rand(4, 6, generator=gen)
        model(x).pow(2).sum().backward()
        opt.step()


def check(case, split):
    torch.manual_seed(7)
    model = Net(split)
    named = dict(model.named_parameters())
    if split:  # decay first (weights), then no decay (biases): not the model's order
        spec = [["fc2.weight", "fc1.weight", "unused.weight"],
                ["fc2.bias", "fc1.bias", "unused.bias"]]
        opt = torch.optim.AdamW([{"params": [named[n] for n in spec[0]], "weight_decay": 0.1},
                                 {"params": [named[n] for n in spec[1]], "weight_decay": 0.0}],
                                lr=1e-2)
    else:
        spec = [list(named)]
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(3)
    train_two_steps(model, opt, gen)
    want = opt.state_dict()
    groups = json.loads(json.dumps(want["param_groups"]))
    if split:
        for g, names in zip(groups, spec):
            g["param_names"] = names
    store = os.path.join(WORK, case)
    write_store(store, model, opt, groups)
    out = os.path.join(WORK, case + ".pt")
    subprocess.run([CKPT, "export", store, "1", "--format", "checkpoint", "-o", out], check=True)
    ck = torch.load(out)
    got = ck["optimizer"]
    if sorted(got["state"]) != sorted(want["state"]):
        sys.exit(f"FAIL: {case}: state keys {sorted(got['state'])}, torch has "
                 f"{sorted(want['state'])}")
    for k, st in want["state"].items():
        for buf, t in st.items():
            if not torch.equal(got["state"][k][buf].reshape(t.shape), t):
                sys.exit(f"FAIL: {case}: state[{k}][{buf!r}] is not the optimizer's")
    if ck["run"]["hyperparams"] != json.loads(HYPER):
        sys.exit(f"FAIL: {case}: run hyperparams {ck['run']['hyperparams']!r} are not {HYPER}")
    for i, g in enumerate(got["param_groups"]):
        if type(g["betas"]) is not tuple or type(g["params"]) is not list:
            sys.exit(f"FAIL: {case}: betas {g['betas']!r} / params {g['params']!r}: torch has a "
                     "tuple / a list")
        if split and (type(g["param_names"]) is not list or g["param_names"] != spec[i]):
            sys.exit(f"FAIL: {case}: param_names {g['param_names']!r}, want the list {spec[i]}")
    for g, h in zip(got["param_groups"], want["param_groups"]):
        for key, value in h.items():
            if g.get(key) != value:
                sys.exit(f"FAIL: {case}: param group key {key!r}: {g.get(key)!r} != {value!r}")
    # one more step from the file equals one more step of the original optimizer
    clone = Net(split)
    clone.load_state_dict(ck["model"])
    cnamed = dict(clone.named_parameters())
    if split:
        copt = torch.optim.AdamW([{"params": [cnamed[n] for n in spec[0]]},
                                  {"params": [cnamed[n] for n in spec[1]]}], lr=1e-2)
    else:
        copt = torch.optim.AdamW(clone.parameters(), lr=1e-2)
    copt.load_state_dict(got)
    x = torch.rand(4, 6, generator=gen)
    for m, o in ((model, opt), (clone, copt)):
        o.zero_grad()
        m(x).pow(2).sum().backward()
        o.step()
    for n, p in model.named_parameters():
        diff = (p - cnamed[n]).abs().max().item()
        if diff > 1e-6:
            sys.exit(f"FAIL: {case}: {n} differs by {diff} after one more step")
    print(f"{case}: optimizer state and one more step equal torch's")


def check_misnamed():
    torch.manual_seed(7)
    model = Net(True)
    named = dict(model.named_parameters())
    spec = [["fc2.weight", "fc1.weight", "unused.weight"], ["fc2.bias", "fc1.bias", "unused.bias"]]
    opt = torch.optim.AdamW([{"params": [named[n] for n in spec[0]]},
                             {"params": [named[n] for n in spec[1]]}], lr=1e-2)
    train_two_steps(model, opt, torch.Generator().manual_seed(3))
    wrong = [dict(spelled=["fc2.weigth"] + spec[0][1:], at=None,
                  want="names 'fc2.weigth', which is no model tensor"),
             dict(spelled=None, at="set_extra",
                  want="param group 1 has no \"param_names\" for its 3 \"params\"")]
    for i, case in enumerate(wrong):
        groups = json.loads(json.dumps(opt.state_dict()["param_groups"]))
        groups[0]["param_names"] = case["spelled"] or spec[0]
        if case["spelled"]:
            groups[1]["param_names"] = spec[1]
        store = os.path.join(WORK, f"misnamed{i}")
        # libckpt refuses a group without names at set_extra (ok() exits with its error:
        # caught; that store stays open, unused); a name that is no model tensor is stored
        # (torch >= 2.6 names parameters relative to the optimizer's module: a refused commit
        # would lose the epoch), and checkpoint.pt, as for a store an older version wrote with
        # a group without names, gives one line, not a file
        if case["at"]:
            try:
                write_store(store + ".refused", model, opt, groups)
                sys.exit(f"FAIL: misnamed {i}: {case['at']} accepted it")
            except SystemExit as e:
                if f"{case['at']}: -22" not in str(e) or case["want"] not in str(e):
                    raise
            os.environ["CKPT_STORE_TEST_OLD_INPUT"] = "1"
        write_store(store, model, opt, groups)
        os.environ.pop("CKPT_STORE_TEST_OLD_INPUT", None)
        out = os.path.join(WORK, f"misnamed{i}.pt")
        r = subprocess.run([CKPT, "export", store, "1", "--format", "checkpoint", "-o", out],
                           capture_output=True, text=True)
        lines = r.stderr.splitlines()
        if r.returncode != 1 or len(lines) != 1 or case["want"] not in lines[0]:
            sys.exit(f"FAIL: misnamed {i}: exit {r.returncode}, stderr {r.stderr!r}")
        if os.path.exists(out):
            sys.exit(f"FAIL: misnamed {i}: {out} was written")
        # ckpt ls -l keeps the row with '?' and names the reason too
        r = subprocess.run([CKPT, "ls", "-l", store, "epoch-0001"], capture_output=True,
                           text=True)
        lines = r.stderr.splitlines()
        if (r.returncode != 1 or len(lines) != 1 or case["want"] not in lines[0] or
                "epoch-0001/checkpoint.pt: Invalid argument" not in lines[0] or
                not any(l.startswith("-????????? ") and l.endswith(" checkpoint.pt")
                        for l in r.stdout.splitlines())):
            sys.exit(f"FAIL: misnamed {i}: ls -l: exit {r.returncode}, stdout {r.stdout!r}, "
                     f"stderr {r.stderr!r}")
    print("misnamed: a wrong or missing param_names is one error line, no file")


check("named", True)
check("in_order", False)
check_misnamed()
