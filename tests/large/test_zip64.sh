#!/usr/bin/env bash
# tests/large/test_zip64.sh - a model over 4 GiB (make test-large; not in CI: needs ~14 GiB of
# disk and ~10 GiB of memory, a few minutes): model.pt and checkpoint.pt use zip64 (sizes and
# offsets past 0xFFFFFFFF), pass `unzip -t`, Python's zipfile and torch.load, and
# model.safetensors passes safetensors_check.py (and the reference checker). BIG_MIB sets the big tensor's size (default
# 4200 MiB). Exit 0 pass, 77 skip (tools or space missing).
set -euo pipefail
. "$(dirname "$0")/../integration/lib.sh"
root=$ROOT
ckpt=$CKPT
mkstore=${MKSTORE_BIN:-$TOOLS/mkstore}
big_mib=${BIG_MIB:-4200}
need_built "$ckpt" "$mkstore"
need_torch
py=$PY
tmp=$WORK
need_kib=$((big_mib * 1024 * 3 + 1048576))
avail_kib=$(df -Pk "$tmp" | awk 'NR == 2 {print $4}')
[ "$avail_kib" -ge "$need_kib" ] || skip "$((need_kib / 1048576)) GiB free needed"

S=$tmp/store
start=$(date +%s)
"$mkstore" "$S" --epochs 1 --layers 8,16,4 --big-mib "$big_mib" --no-sync >/dev/null
"$ckpt" export "$S" 1 --format pt -o "$tmp/model.pt"
unzip -tq "$tmp/model.pt" >/dev/null || fail "unzip -t model.pt"
"$py" - "$tmp/model.pt" "$big_mib" <<'PY'
import sys, zipfile, zlib
import torch
path, big_mib = sys.argv[1], int(sys.argv[2])
z = zipfile.ZipFile(path)
infos = {i.filename: i for i in z.infolist()}
big = [i for i in infos.values() if i.file_size >= 0xFFFFFFFF]
if not big:
    sys.exit('FAIL: no entry of 4 GiB or more')
late = [i for i in infos.values() if i.header_offset >= 0xFFFFFFFF]
if not late:
    sys.exit('FAIL: no entry starts past 4 GiB (offset zip64 extra untested)')
sd = torch.load(path, weights_only=True)
w = sd['big.weight']
if tuple(w.shape) != (big_mib * 1024, 256) or w.dtype != torch.float32:
    sys.exit('FAIL: big.weight is %s %s' % (w.dtype, tuple(w.shape)))
crc = zlib.crc32(w.numpy().tobytes()) & 0xffffffff
if crc != big[0].CRC:
    sys.exit('FAIL: big.weight bytes do not match the stored CRC-32')
print('model.pt: %d entries, %d zip64-sized, %d past 4 GiB; big.weight %s loads, CRC ok'
      % (len(infos), len(big), len(late), tuple(w.shape)))
PY
rm -f "$tmp/model.pt"
"$ckpt" export "$S" 1 --format checkpoint -o "$tmp/checkpoint.pt"
unzip -tq "$tmp/checkpoint.pt" >/dev/null || fail "unzip -t checkpoint.pt"
"$py" -c '
import sys, torch
c = torch.load(sys.argv[1])
assert c["model"]["big.weight"].numel() == int(sys.argv[2]) * 1024 * 256
print("checkpoint.pt: loads, epoch", c["epoch"])' "$tmp/checkpoint.pt" "$big_mib"
rm -f "$tmp/checkpoint.pt"
"$ckpt" export "$S" 1 --format safetensors -o "$tmp/model.safetensors"
safetensors_check "$tmp/model.safetensors" >/dev/null || fail "safetensors-check rejects the big file"
echo "zip64: ${big_mib} MiB model checked in $(($(date +%s) - start)) s"
