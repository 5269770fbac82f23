#!/usr/bin/env bash
# tests/integration/test_safetensors_check.sh - the Python safetensors validator the export and
# mount tests use (safetensors_check.py) accepts a well-formed file (every dtype size, a scalar,
# an empty tensor, metadata) and rejects hand-broken ones, each for its reason: the header length
# (short file, over 100 MB, past the end, unpadded), the header (not UTF-8, not an object, a
# name twice, metadata that is not string to string), a tensor (unknown dtype, a bad shape or
# data_offsets, a size that is not numel * itemsize) and the layout (a hole, an overlap, not
# starting at 0, bytes past the last tensor). Where the reference checker is found
# (SAFETENSORS_CHECK, or ../shared/tools/safetensors-check) it must give the same verdicts.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
check=$ROOT/tests/integration/safetensors_check.py
ref=${SAFETENSORS_CHECK:-$ROOT/../shared/tools/safetensors-check}
[ -x "$ref" ] || ref=""
py=""
for cand in "${PYTHON:-}" python3 /usr/bin/python3; do # one with numpy, for --dump
	[ -n "$cand" ] && "$cand" -c 'import numpy' 2>/dev/null && py=$cand && break
done

python3 - "$WORK" <<'PY' || fail "cannot write the test files"
import json, struct, sys
d = sys.argv[1]

def write(name, header, data, pad=True, raw=None):
    text = raw if raw is not None else json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-(8 + len(text)) % 8)
    with open("%s/%s.safetensors" % (d, name), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)

good = {"__metadata__": {"format": "pt", "epoch": "3"},
        "fc1.weight": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
        "step": {"dtype": "I64", "shape": [], "data_offsets": [24, 32]},
        "half": {"dtype": "BF16", "shape": [3], "data_offsets": [32, 38]},
        "flags": {"dtype": "BOOL", "shape": [2], "data_offsets": [38, 40]},
        "empty": {"dtype": "F64", "shape": [0, 4], "data_offsets": [40, 40]}}
write("good", good, bytes(range(40)))

def bad(name, change, data=bytes(range(40))):
    h = json.loads(json.dumps(good))
    change(h)
    write(name, h, data)

bad("unknown-dtype", lambda h: h["step"].update(dtype="F31"))
bad("negative-dim", lambda h: h["fc1.weight"].update(shape=[2, -3]))
bad("float-dim", lambda h: h["fc1.weight"].update(shape=[2, 3.0]))
bad("offsets-three", lambda h: h["step"].update(data_offsets=[24, 28, 32]))
bad("size-mismatch", lambda h: h["fc1.weight"].update(shape=[2, 2]))
bad("metadata-number", lambda h: h["__metadata__"].update(epoch=3))
bad("metadata-list", lambda h: h.update(__metadata__=["format", "pt"]))
bad("info-not-object", lambda h: h.update(step=[24, 32]))
bad("hole", lambda h: (h["step"].update(data_offsets=[28, 36]), h["half"].update(data_offsets=[36, 42]),
                      h["flags"].update(data_offsets=[42, 44]), h["empty"].update(data_offsets=[44, 44])),
    bytes(44))
bad("overlap", lambda h: h["step"].update(data_offsets=[20, 28]))
bad("not-from-zero", lambda h: h["fc1.weight"].update(data_offsets=[8, 32]))
bad("end-before-begin", lambda h: h["empty"].update(data_offsets=[40, 36]))
bad("trailing-bytes", lambda h: None, bytes(48))
bad("short-buffer", lambda h: None, bytes(32))
text = json.dumps(good, separators=(",", ":"))
write("duplicate-name", None, bytes(range(40)),
      raw=text.replace('"step":', '"fc1.weight":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"step":').encode())
write("not-utf8", None, bytes(range(40)), raw=text.replace("fc1", "fc\xff").encode("latin-1"))
write("not-object", None, b"", raw=b'["fc1"]')
write("not-json", None, bytes(range(40)), raw=text[:-1].encode())
write("unpadded", good, bytes(range(40)), pad=False, raw=text.encode() + b" " * (-(8 + len(text)) % 8 + 1))
with open(d + "/short-file.safetensors", "wb") as f:
    f.write(b"\x10\x00\x00")
with open(d + "/header-too-large.safetensors", "wb") as f:
    f.write(struct.pack("<Q", 100_000_001) + b"{}" + b" " * 6)
with open(d + "/header-past-end.safetensors", "wb") as f:
    f.write(struct.pack("<Q", 64) + b"{}" + b" " * 6)
PY

# NAME|what the one stderr line says
cases=(
	"unknown-dtype|tensor 'step': unknown dtype 'F31'"
	"negative-dim|tensor 'fc1.weight': shape [2, -3] is not a list of non-negative integers"
	"float-dim|tensor 'fc1.weight': shape [2, 3.0] is not a list"
	"offsets-three|tensor 'step': data_offsets [24, 28, 32] are not [begin, end]"
	"size-mismatch|tensor 'fc1.weight': holds 24 bytes, shape [2, 2] of F32 needs 16"
	"metadata-number|__metadata__ is not a map of strings to strings"
	"metadata-list|__metadata__ is not a map of strings to strings"
	"info-not-object|tensor 'step': not an object"
	"hole|tensor 'step': begins at 28, the previous one ends at 24 (a hole)"
	"overlap|tensor 'step': begins at 20, the previous one ends at 24 (an overlap)"
	"not-from-zero|tensor 'fc1.weight': begins at 8, the previous one ends at 0 (a hole)"
	"end-before-begin|tensor 'empty': data_offsets [40, 36] end before they begin"
	"trailing-bytes|the tensors cover 40 bytes of a data buffer of 48"
	"short-buffer|the tensors cover 40 bytes of a data buffer of 32"
	"duplicate-name|duplicate key 'fc1.weight' in the header"
	"not-utf8|header is not UTF-8"
	"not-object|header does not begin with {"
	"not-json|header is not JSON"
	"unpadded|the data buffer starts at 361, not a multiple of 8 (header not padded)"
	"short-file|file of 3 bytes, shorter than the 8-byte header length"
	"header-too-large|header length 100000001 exceeds 100000000 bytes"
	"header-past-end|header of 64 bytes runs past the end of the file (16 bytes)"
)

out=$(python3 "$check" "$WORK/good.safetensors") || fail "the good file is rejected"
[ "$(head -n 1 <<<"$out")" = 'metadata: {"format": "pt", "epoch": "3"}' ] || fail "metadata: $out"
grep -qxF "$(printf 'fc1.weight\tF32\t[2, 3]\t24 bytes')" <<<"$out" || fail "tensor lines: $out"
[ "$(wc -l <<<"$out")" -eq 6 ] || fail "not one line per tensor: $out"
python3 "$check" "$WORK/good.safetensors" --quiet >"$WORK/out" || fail "--quiet"
[ ! -s "$WORK/out" ] || fail "--quiet printed: $(cat "$WORK/out")"
if [ -n "$py" ]; then
	"$py" "$check" "$WORK/good.safetensors" --quiet --dump "$WORK/dump" || fail "--dump"
	"$py" -c 'import numpy as np, sys
a = np.load(sys.argv[1] + "/fc1.weight.npy")
assert a.shape == (2, 3) and a.dtype == np.float32 and a.tobytes() == bytes(range(24)), a
assert np.load(sys.argv[1] + "/empty.npy").shape == (0, 4)' "$WORK/dump" || fail "--dump wrote other arrays"
else
	echo "note: --dump not tried (no python3 with numpy)"
fi
[ -z "$ref" ] || "$ref" "$WORK/good.safetensors" --quiet || fail "the reference checker rejects the good file"
for row in "${cases[@]}"; do
	name=${row%%|*} want=${row#*|}
	python3 "$check" "$WORK/$name.safetensors" >"$WORK/out" 2>"$WORK/err"
	rc=$?
	[ $rc -eq 1 ] || fail "$name: exit $rc, want 1: $(cat "$WORK/err")"
	[ ! -s "$WORK/out" ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] &&
		grep -qF "safetensors_check: $WORK/$name.safetensors: invalid: $want" "$WORK/err" ||
		fail "$name: $(cat "$WORK/out" "$WORK/err")"
	if [ -n "$ref" ]; then
		"$ref" "$WORK/$name.safetensors" --quiet 2>/dev/null
		rc=$?
		[ $rc -eq 1 ] || fail "$name: the reference checker exits $rc, this validator rejects it"
	fi
done
python3 "$check" 2>/dev/null
[ $? -eq 2 ] || fail "no FILE: not a usage error"
python3 "$check" "$WORK/no-such-file" 2>"$WORK/err"
[ $? -eq 1 ] && grep -q "cannot read (No such file or directory)" "$WORK/err" || fail "a missing file: $(cat "$WORK/err")"
echo "ok: safetensors_check.py accepts a good file and rejects ${#cases[@]} broken ones$([ -n "$ref" ] && echo ", as the reference checker does")"
