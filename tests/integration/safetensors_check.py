#!/usr/bin/env python3
"""safetensors_check.py FILE [--dump DIR] [--quiet]

Validates a .safetensors file by the rules of the reference reader (huggingface/safetensors,
tensor.rs), for machines where the safetensors package does not install:
  - u64le N, then N header bytes, then the data buffer; N at most 100,000,000, the header
    within the file, 8 + N a multiple of 8 (the header is padded);
  - the header is UTF-8 JSON beginning with '{', an object, no key twice (at any level);
  - __metadata__, when present, maps strings to strings;
  - each tensor is an object with a known dtype, a shape of non-negative integers and
    data_offsets [begin, end] of non-negative integers;
  - sorted by offset the tensors start at 0 and leave no hole and no overlap; end - begin is
    numel * itemsize; the last end is the end of the file.
Prints "metadata: JSON" and one "NAME<TAB>DTYPE<TAB>[SHAPE]<TAB>N bytes" line per tensor
(unless --quiet). With --dump DIR writes every tensor as DIR/NAME.npy ('%' and '/' of NAME
percent-encoded; bf16 widened to float32; numpy needed). Exit 0 valid, 1 invalid (one line on
stderr saying why), 2 usage.
"""
import json
import os
import struct
import sys

MAX_HEADER = 100_000_000
BITS = {'BOOL': 8, 'U8': 8, 'I8': 8, 'F8_E5M2': 8, 'F8_E4M3': 8, 'I16': 16, 'U16': 16,
        'F16': 16, 'BF16': 16, 'I32': 32, 'U32': 32, 'F32': 32, 'C64': 64, 'F64': 64,
        'I64': 64, 'U64': 64}
NPY = {'F32': '<f4', 'F64': '<f8', 'F16': '<f2', 'I64': '<i8', 'I32': '<i4', 'I16': '<i2',
       'I8': 'i1', 'U8': 'u1', 'BOOL': 'b1', 'U16': '<u2', 'U32': '<u4', 'U64': '<u8'}


class Invalid(Exception):
    pass


def is_count(x):
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def unique_keys(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise Invalid('duplicate key %r in the header' % k)
        obj[k] = v
    return obj


def parse(buf):
    """(metadata or None, [(name, dtype, shape, bytes)] in offset order) of a valid file"""
    if len(buf) < 8:
        raise Invalid('file of %d bytes, shorter than the 8-byte header length' % len(buf))
    n = struct.unpack('<Q', buf[:8])[0]
    if n > MAX_HEADER:
        raise Invalid('header length %d exceeds %d bytes' % (n, MAX_HEADER))
    if 8 + n > len(buf):
        raise Invalid('header of %d bytes runs past the end of the file (%d bytes)' % (n, len(buf)))
    if (8 + n) % 8:
        raise Invalid('the data buffer starts at %d, not a multiple of 8 (header not padded)' % (8 + n))
    try:
        text = buf[8:8 + n].decode('utf-8')
    except UnicodeDecodeError as e:
        raise Invalid('header is not UTF-8 (%s)' % e)
    if not text.startswith('{'):
        raise Invalid('header does not begin with {')
    try:
        header = json.loads(text, object_pairs_hook=unique_keys)
    except ValueError as e:
        raise Invalid('header is not JSON (%s)' % e)
    if not isinstance(header, dict):
        raise Invalid('header is not a JSON object')
    meta = header.pop('__metadata__', None)
    if meta is not None and not (isinstance(meta, dict) and
                                 all(isinstance(v, str) for v in meta.values())):
        raise Invalid('__metadata__ is not a map of strings to strings')
    tensors = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise Invalid('tensor %r: not an object' % name)
        dtype, shape, offs = info.get('dtype'), info.get('shape'), info.get('data_offsets')
        if dtype not in BITS:
            raise Invalid('tensor %r: unknown dtype %r' % (name, dtype))
        if not (isinstance(shape, list) and all(is_count(d) for d in shape)):
            raise Invalid('tensor %r: shape %r is not a list of non-negative integers' % (name, shape))
        if not (isinstance(offs, list) and len(offs) == 2 and all(is_count(o) for o in offs)):
            raise Invalid('tensor %r: data_offsets %r are not [begin, end]' % (name, offs))
        tensors.append((offs[0], offs[1], name, dtype, shape))
    tensors.sort(key=lambda t: (t[0], t[1]))
    data = buf[8 + n:]
    at, out = 0, []
    for begin, end, name, dtype, shape in tensors:
        if begin != at:
            raise Invalid('tensor %r: begins at %d, the previous one ends at %d (%s)' %
                          (name, begin, at, 'a hole' if begin > at else 'an overlap'))
        if end < begin:
            raise Invalid('tensor %r: data_offsets [%d, %d] end before they begin' % (name, begin, end))
        numel = 1
        for d in shape:
            numel *= d
        if numel * BITS[dtype] % 8:
            raise Invalid('tensor %r: %d elements of %s are not whole bytes' % (name, numel, dtype))
        if end - begin != numel * BITS[dtype] // 8:
            raise Invalid('tensor %r: holds %d bytes, shape %r of %s needs %d' %
                          (name, end - begin, shape, dtype, numel * BITS[dtype] // 8))
        at = end
        out.append((name, dtype, shape, data[begin:end]))
    if at != len(data):
        raise Invalid('the tensors cover %d bytes of a data buffer of %d' % (at, len(data)))
    return meta, out


def dump(tensors, outdir):
    import numpy as np
    os.makedirs(outdir, exist_ok=True)
    for name, dtype, shape, raw in tensors:
        if dtype == 'BF16':
            a = (np.frombuffer(raw, dtype='<u2').astype('<u4') << 16).view('<f4')
        elif dtype in NPY:
            a = np.frombuffer(raw, dtype=NPY[dtype])
        else:
            continue
        safe = name.replace('%', '%25').replace('/', '%2F')
        np.save(os.path.join(outdir, safe + '.npy'), a.reshape(shape))


def main(argv):
    if argv[:1] in (['-h'], ['--help']):
        print(__doc__.strip())
        return 0
    quiet = '--quiet' in argv
    args = [a for a in argv if a != '--quiet']
    outdir = None
    if '--dump' in args:
        i = args.index('--dump')
        if i + 1 >= len(args):
            print('safetensors_check: --dump needs a directory', file=sys.stderr)
            return 2
        outdir = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1:
        print('usage: safetensors_check.py FILE [--dump DIR] [--quiet]', file=sys.stderr)
        return 2
    path = args[0]
    try:
        with open(path, 'rb') as f:
            buf = f.read()
    except OSError as e:
        print('safetensors_check: %s: cannot read (%s)' % (path, e.strerror), file=sys.stderr)
        return 1
    try:
        meta, tensors = parse(buf)
    except Invalid as e:
        print('safetensors_check: %s: invalid: %s' % (path, e), file=sys.stderr)
        return 1
    if not quiet:
        print('metadata: %s' % json.dumps(meta))
        for name, dtype, shape, raw in tensors:
            print('%s\t%s\t%s\t%d bytes' % (name, dtype, shape, len(raw)))
    if outdir:
        dump(tensors, outdir)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
