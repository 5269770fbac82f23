#!/usr/bin/env bash
# tests/integration/test_mount_safety.sh - hostile tensor names stay inside the mount; a tensor
# whose stored bytes fail their CRC-32 reads as EIO with one log line naming it.
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse
MKSTORE=${MKSTORE:-$TOOLS/mkstore}
[ -x "$MKSTORE" ] || fail "build/tests/tools/mkstore is missing (make build/tests/tools/mkstore)"

store=$TMP/store
mnt=$TMP/mnt
"$MKSTORE" "$store" --epochs 2 --dtypes --hostile-names --no-sync >"$TMP/mkstore.log" 2>&1 ||
	fail "mkstore: $(cat "$TMP/mkstore.log")"

# ---- corrupt one byte of epoch 1's fc1.weight in data.mdb (every copy of its bytes)
"$BIN/ckpt" cat "$store" epoch-0001/model/fc1.weight.npy >"$TMP/fc1.npy" || fail "ckpt cat"
"$PY" - "$TMP/fc1.npy" "$store/data.mdb" <<'PY' || fail "could not corrupt the store"
import sys
npy = open(sys.argv[1], "rb").read()
data = npy[10 + int.from_bytes(npy[8:10], "little"):]
needle = data[:256]
db = bytearray(open(sys.argv[2], "rb").read())
hits, pos = 0, db.find(needle)
while pos >= 0:
    db[pos + 100] ^= 0xFF
    hits += 1
    pos = db.find(needle, pos + 1)
assert hits > 0, "tensor bytes not found in data.mdb"
open(sys.argv[2], "r+b").write(db)
PY

mount_store "$store" "$mnt"

# ---- hostile names: escaped, single components, nothing outside the mount
model=$mnt/epoch-0002/model
for want in '%2E.%2Fescape.npy' 'a%2Fb.npy' '%2Ehidden.npy' 'ctl%01name.npy' 'dot...npy' '%2E..npy'; do
	[ -f "$model/$want" ] || fail "hostile name not shown as $want: $(ls "$model")"
done
[ -z "$(ls -A "$model" | grep '^\.')" ] || fail "a hidden file appeared: $(ls -A "$model" | grep '^\.')"
[ ! -e "$mnt/epoch-0002/escape.npy" ] && [ ! -e "$mnt/escape.npy" ] || fail "a name escaped its directory"
long=$(ls "$model" | awk 'length($0) > 200')
[ -n "$long" ] && [ ${#long} -le 255 ] || fail "the 300-byte name is not shortened to <= 255 bytes"
[[ "$long" == *%~*.npy ]] || fail "shortened name lacks its hash: $long"
"$PY" - "$mnt" <<'PY' || fail "a path or link leads outside the mount"
import os, sys
root = os.path.realpath(sys.argv[1])
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        p = os.path.join(d, n)
        assert "/" not in n and n not in (".", ".."), p
        real = os.path.realpath(p)
        assert real.startswith(root + os.sep), f"{p} -> {real}"
        if os.path.islink(p):
            assert "/" not in os.readlink(p), p
PY
# the hostile tensors' bytes are right (mount_check decodes names and compares CRCs)
"$PY" "$(dirname "$0")/mount_check.py" "$mnt" "$store" "$BIN/ckpt" >"$TMP/check.log" 2>&1 &&
	fail "mount_check passed although epoch 1's fc1.weight is corrupt"
grep -q "Input/output error\|OSError" "$TMP/check.log" || fail "mount_check: $(tail -n 3 "$TMP/check.log")"

# ---- the corrupt tensor: EIO and one log line naming it; its neighbours read fine
out=$(cat "$mnt/epoch-0001/model/fc1.weight.npy" 2>&1 >/dev/null) && fail "corrupt tensor read without error"
grep -q "Input/output error" <<<"$out" || fail "corrupt tensor: expected EIO, got: $out"
grep -q "fc1.weight" "$TMP/ckptfs.log" || fail "no log line names the corrupt tensor: $(cat "$TMP/ckptfs.log")"
cat "$mnt/epoch-0001/model/fc1.bias.npy" >/dev/null || fail "a healthy tensor beside it fails"
cmp -s "$mnt/epoch-0002/model/fc1.weight.npy" <("$BIN/ckpt" cat "$store" epoch-0002/model/fc1.weight.npy) ||
	fail "epoch 2's fc1.weight differs between mount and ckpt cat"
out=$("$BIN/ckpt" cat "$store" epoch-0001/model/fc1.weight.npy 2>&1 >/dev/null) && fail "ckpt cat of a corrupt tensor succeeded"
[ "$(wc -l <<<"$out")" -eq 1 ] || fail "ckpt cat: expected one error line, got: $out"
unmount_store "$mnt"

# ---- a /dev/fuse that is no FUSE device (here /dev/null, in a private mount namespace): the
# mount fails in one line that carries libfuse's reason (it was two lines)
if [ "$(id -u)" -eq 0 ] && unshare -m true 2>/dev/null; then
	mkdir -p "$TMP/nofuse"
	unshare -m bash -c 'mount --bind /dev/null /dev/fuse && exec "$0" "$1" "$2"' \
		"$BIN/ckptfs" "$store" "$TMP/nofuse" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ $rc -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] &&
		grep -q "^ckptfs: error: cannot mount .* (fuse: mount failed: " "$TMP/err" ||
		fail "a /dev/fuse that is /dev/null: exit $rc: $(cat "$TMP/err")"
fi
echo "test_mount_safety: ok"
