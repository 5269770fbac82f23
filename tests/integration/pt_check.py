#!/usr/bin/env python3
"""pt_check.py - checks of model.pt / checkpoint.pt / model.safetensors for the integration tests.

Usage: pt_check.py COMMAND ARGS... [';' COMMAND ARGS...]   (torch is imported once)
Exit 0 = pass, 1 = fail with one line on stderr.
  state-vs-npy PT NPYDIR           torch.load(PT, weights_only=True) equals every NPYDIR/*.npy
  dump-vs-npy DUMPDIR NPYDIR       safetensors-check --dump output equals the view's .npy files
  devices PT DEVICE                plain torch.load works; every tensor is on DEVICE
  cuda-error PT                    torch.load fails exactly as for a GPU file on a CPU machine
  checkpoint CK sgd|adam           checkpoint.pt loads; its optimizer loads into torch.optim
  steps CK sgd|adam                CK's optimizer loads into torch.optim over CK's fc* tensors
                                   and takes two steps (every key a step needs is there)
  batchnorm CK sgd|adam LAYERS NPYDIR
                                   CK of an MLP with BatchNorm1d after each hidden layer loads
                                   into that torch module (strict) and its optimizer; each
                                   parameter's state equals NPYDIR/<param>.<buffer>.npy
  val-acc PT CK CSV|IDXDIR VALSPLIT LAYERS
                                   load_state_dict(strict=True) into an MLP (fc1, relu, fc2, ..);
                                   its accuracy on the last VALSPLIT training rows equals CK's
                                   metrics['val_acc'] (the engine's)
  resume-step CK PT2 CSV VALSPLIT LAYERS
                                   one PyTorch step from CK on all fit rows equals PT2 (1e-5)
  ranges FILE WHOLE [N]            N random pread ranges of FILE equal those of WHOLE
"""
import os
import random
import sys
import urllib.parse

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ckpt_torch import MLP, load_idx_split  # noqa: E402


def fail(msg):
    print('pt_check: FAIL: ' + msg, file=sys.stderr)
    sys.exit(1)


def view_name(filename):
    """The tensor name behind a view file name (None-free): (name, is_prefix)."""
    base = filename[:-len('.npy')]
    hashed = '%~' in base
    if hashed:
        base = base[:base.index('%~')]
    raw = urllib.parse.unquote_to_bytes(base)
    return raw.decode('utf-8', 'surrogateescape'), hashed


def load_npy_dir(npydir):
    out = []
    for f in sorted(os.listdir(npydir)):
        if f.endswith('.npy'):
            name, hashed = view_name(f)
            out.append((name, hashed, np.load(os.path.join(npydir, f))))
    return out


def match(tensors, npys, what):
    """Pair every tensor name with exactly one .npy file and compare values."""
    used = set()
    for name, t in tensors.items():
        hits = [i for i, (n, hashed, _) in enumerate(npys)
                if (n == name if not hashed else name.startswith(n)) and i not in used]
        if len(hits) != 1:
            fail('%s: tensor %r matches %d .npy files' % (what, name, len(hits)))
        used.add(hits[0])
        a = npys[hits[0]][2]
        if t.dtype == torch.bfloat16:
            b = t.float().numpy()  # the view widens bfloat16 to <f4
        else:
            b = t.numpy()
        if a.shape != b.shape or a.dtype != b.dtype:
            fail('%s: %r: npy %s %s vs %s %s' % (what, name, a.dtype, a.shape, b.dtype, b.shape))
        if a.tobytes() != b.tobytes():
            fail('%s: %r: values differ' % (what, name))
    if len(used) != len(npys):
        fail('%s: %d .npy files have no tensor' % (what, len(npys) - len(used)))


def cmd_state_vs_npy(pt, npydir):
    sd = torch.load(pt, weights_only=True)
    if type(sd).__name__ != 'OrderedDict':
        fail('%s: not an OrderedDict but %s' % (pt, type(sd)))
    match(sd, load_npy_dir(npydir), pt)
    print('%s: %d tensors equal the .npy files' % (os.path.basename(pt), len(sd)))


def cmd_dump_vs_npy(dumpdir, npydir):
    dumped = {}
    for f in os.listdir(dumpdir):
        name = f[:-4].replace('%2F', '/').replace('%25', '%')
        dumped[name] = torch.from_numpy(np.load(os.path.join(dumpdir, f)))
    npys = load_npy_dir(npydir)
    match(dumped, npys, 'safetensors dump')
    print('safetensors: %d tensors equal the .npy files' % len(dumped))


def all_tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from all_tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from all_tensors(v)


def cmd_devices(pt, device):
    obj = torch.load(pt)
    n = 0
    for t in all_tensors(obj):
        if str(t.device) != device:
            fail('%s: a tensor is on %s, not %s' % (pt, t.device, device))
        n += 1
    if n == 0:
        fail('%s: no tensors' % pt)
    print('%s: %d tensors on %s' % (os.path.basename(pt), n, device))


def cmd_cuda_error(pt):
    if torch.cuda.is_available():
        print('cuda is available: nothing to check')
        return
    try:
        torch.load(pt)
    except RuntimeError as e:
        if 'Attempting to deserialize object on a CUDA device' not in str(e):
            fail('%s: unexpected error: %s' % (pt, e))
        # and the usual remedy works
        obj = torch.load(pt, map_location='cpu')
        if not all(t.device.type == 'cpu' for t in all_tensors(obj)):
            fail('%s: map_location=cpu left a tensor off the CPU' % pt)
        print('%s: CUDA error as for a GPU file; map_location="cpu" loads' % os.path.basename(pt))
        return
    fail('%s: loaded on a CPU-only machine although it names a CUDA device' % pt)


def mlp(layers):
    return MLP([int(x) for x in layers.split(',')])


def cmd_checkpoint(ck, opt_name):
    c = torch.load(ck)
    for key, typ in (('model', dict), ('optimizer', dict), ('epoch', int), ('step', int),
                     ('metrics', dict)):
        if not isinstance(c.get(key), typ):
            fail('%s: %r is %r, not %s' % (ck, key, type(c.get(key)), typ.__name__))
    names = [n for n in c['model'] if n.startswith('fc')]
    params = [torch.nn.Parameter(c['model'][n].clone().float()) for n in names]
    if opt_name == 'sgd':
        opt = torch.optim.SGD(params, lr=0.5)
    else:
        opt = torch.optim.Adam(params, lr=0.5)
    opt.load_state_dict(c['optimizer'])
    sd = opt.state_dict()
    if sd['param_groups'][0]['lr'] != c['optimizer']['param_groups'][0]['lr']:
        fail('%s: lr not restored' % ck)
    if opt_name == 'adam':
        if not isinstance(sd['param_groups'][0]['betas'], tuple):
            fail('%s: betas is not a tuple' % ck)
        st = sd['state'][0]
        if not (torch.is_tensor(st['step']) and st['step'].dim() == 0 and
                st['step'].dtype == torch.float32):
            fail('%s: Adam step is not a 0-dim float32 tensor' % ck)
    for v in c['metrics'].values():
        if not isinstance(v, float):
            fail('%s: metric %r is not a float' % (ck, v))
    print('%s: epoch %d step %d, %d model tensors, %s state loads' %
          (os.path.basename(ck), c['epoch'], c['step'], len(c['model']), opt_name))


def cmd_steps(ck, opt_name):
    c = torch.load(ck)
    params = [torch.nn.Parameter(c['model'][n].clone().float())
              for n in c['model'] if n.startswith('fc')]
    cls = torch.optim.SGD if opt_name == 'sgd' else torch.optim.Adam
    opt = cls(params, lr=0.5)
    opt.load_state_dict(c['optimizer'])
    for _ in range(2):
        for p in params:
            p.grad = torch.ones_like(p)
        try:
            opt.step()
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            fail('%s: step() after load_state_dict: %s: %s' % (ck, type(e).__name__, e))
    print('%s: %s loads and steps (param group %s)' %
          (os.path.basename(ck), opt_name, sorted(k for k in c['optimizer']['param_groups'][0])))


class BatchNormMLP(torch.nn.Module):
    """fc1, bn1, fc2, bn2, ..., fcN: parameters and buffers in torch's registration order"""
    def __init__(self, sizes):
        super().__init__()
        for i in range(len(sizes) - 1):
            setattr(self, 'fc%d' % (i + 1), torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i + 2 < len(sizes):
                setattr(self, 'bn%d' % (i + 1), torch.nn.BatchNorm1d(sizes[i + 1]))


def cmd_batchnorm(ck, opt_name, layers, npydir):
    c = torch.load(ck)
    net = BatchNormMLP([int(x) for x in layers.split(',')])
    check_metadata(c['model'], net, ck)
    net.load_state_dict(c['model'], strict=True)
    keys = sorted(c['optimizer']['state'])
    nparams = len(list(net.parameters()))
    if keys != list(range(nparams)):
        fail('%s: optimizer state keys %r, not 0..%d (the parameters, buffers left out)' %
             (ck, keys, nparams - 1))
    cls = torch.optim.SGD if opt_name == 'sgd' else torch.optim.Adam
    opt = cls(net.parameters(), lr=0.5)
    opt.load_state_dict(c['optimizer'])
    npys = {n: a for n, _, a in load_npy_dir(npydir)}
    checked = 0
    for name, p in net.named_parameters():
        for buf, value in opt.state[p].items():
            want = npys.get('%s.%s' % (name, buf))
            if want is None:
                fail('%s: no %s.%s.npy in the view' % (ck, name, buf))
            if not np.array_equal(value.numpy(), want):
                fail('%s: %s of %s is not the stored %s.%s' % (ck, buf, name, name, buf))
            checked += 1
    if checked == 0:
        fail('%s: no optimizer state' % ck)
    print('%s: %d parameters, buffers left out of the optimizer, %d state tensors match' %
          (os.path.basename(ck), nparams, checked))


def read_csv(path):
    data = np.loadtxt(path, delimiter=',', dtype=np.float64, ndmin=2)
    y = torch.from_numpy(data[:, 0].astype(np.int64))
    x = torch.from_numpy((data[:, 1:] / 255.0).astype(np.float32))
    return x, y


def read_idx(directory):
    """Fashion-MNIST training images (flattened, /255) and labels from IDX files."""
    try:
        return load_idx_split(directory, 'train')
    except FileNotFoundError as e:
        fail('%s: no IDX file %s' % (directory, e))


def check_metadata(sd, module, what):
    """sd._metadata is what module.state_dict() keeps, less the modules without tensors (a
    state dict cannot name them), in the same order"""
    want = [(k, v) for k, v in module.state_dict()._metadata.items()
            if k == '' or any(n.startswith(k + '.') for n in sd)]
    got = list(getattr(sd, '_metadata', {}).items())
    if got != want:
        fail('%s: _metadata %r, torch keeps %r' % (what, got, want))


def cmd_val_acc(pt, ck, data, val_split, layers):
    expected = torch.load(ck)['metrics']['val_acc']
    model = mlp(layers)
    sd = torch.load(pt, weights_only=True)
    check_metadata(sd, model, pt)
    check_metadata(torch.load(ck)['model'], model, ck)
    model.load_state_dict(sd, strict=True)
    x, y = read_idx(data) if os.path.isdir(data) else read_csv(data)
    v = int(val_split)
    with torch.no_grad():
        acc = (model(x[-v:]).argmax(1) == y[-v:]).double().mean().item()
    if abs(acc - float(expected)) > 1e-9:
        fail('accuracy %.6f on the validation split, engine says %s' % (acc, expected))
    print('validation accuracy %.4f equals the engine\'s val_acc %s' % (acc, expected))


def cmd_resume_step(ck, pt2, csv, val_split, layers):
    c = torch.load(ck)
    model = mlp(layers)
    model.load_state_dict(c['model'], strict=True)
    name = c.get('optimizer_name', 'sgd')
    opt = {'sgd': torch.optim.SGD, 'adam': torch.optim.Adam,
           'adamw': torch.optim.AdamW}[name](model.parameters(), lr=1.0)
    opt.load_state_dict(c['optimizer'])
    x, y = read_csv(csv)
    n_fit = len(y) - int(val_split)
    # one batch per epoch: the next step sees every fit row (order does not change the mean)
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x[:n_fit]), y[:n_fit])
    loss.backward()
    opt.step()
    want = torch.load(pt2, weights_only=True)
    worst = 0.0
    for k, v in model.state_dict().items():
        worst = max(worst, (v - want[k]).abs().max().item())
    if worst > 1e-5:
        fail('one PyTorch %s step differs from ckpt-train --resume by %g' % (name, worst))
    print('one PyTorch %s step equals ckpt-train --resume (max diff %.2g)' % (name, worst))


def cmd_ranges(path, whole, n='200'):
    with open(whole, 'rb') as f:
        data = f.read()
    size = os.path.getsize(path)
    if size != len(data):
        fail('%s: st_size %d, whole file %d bytes' % (path, size, len(data)))
    rng = random.Random(7)
    fd = os.open(path, os.O_RDONLY)
    try:
        for i in range(int(n)):
            off = rng.randrange(0, size + 16)
            length = rng.randrange(0, 1 << rng.randrange(1, 22))
            got = os.pread(fd, length, off)
            if got != data[off:off + length]:
                fail('%s: bytes [%d, +%d) differ from the whole file' % (path, off, length))
    finally:
        os.close(fd)
    print('%s: %s random ranges equal the whole file' % (os.path.basename(path), n))


COMMANDS = {
    'state-vs-npy': cmd_state_vs_npy, 'dump-vs-npy': cmd_dump_vs_npy, 'devices': cmd_devices,
    'cuda-error': cmd_cuda_error, 'checkpoint': cmd_checkpoint, 'val-acc': cmd_val_acc,
    'batchnorm': cmd_batchnorm, 'steps': cmd_steps,
    'resume-step': cmd_resume_step, 'ranges': cmd_ranges,
}

def main(argv):
    cmds, cur = [], []
    for a in argv:
        if a == ';':
            cmds.append(cur)
            cur = []
        else:
            cur.append(a)
    cmds.append(cur)
    for c in cmds:
        if not c or c[0] not in COMMANDS:
            print(__doc__, file=sys.stderr)
            sys.exit(2)
    for c in cmds:
        COMMANDS[c[0]](*c[1:])


if __name__ == '__main__':
    main(sys.argv[1:])
