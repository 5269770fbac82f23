#!/usr/bin/env bash
# tests/integration/test_train_fake_cuda.sh - the engine's GPU path on a machine without a GPU,
# through a STAND-IN for the CUDA plug-in (build/tests/tools/fake-cuda/ckpt-train-cuda.so: the
# CPU backend reporting device cuda:N, tests/tools/fake_cuda/). What the real GPU checks
# (tests/gpu/run.sh) cannot show here:
#   - tensors and train.state record cuda:0; the view's .pt files load on a CPU-only torch
#     (storages remapped to cpu) and keep cuda:0 with --map-location keep
#   - --resume without --device continues on the run's device (bit-exactly); --device cpu
#     moves it with a note; without a GPU the resume is refused with one line, store untouched
#   - a model bigger than the device's memory is refused naming the device and the sizes
#   - a device failure mid-run stops through the engine's error path: a store with no
#     committed epoch is removed, otherwise it ends at the last committed epoch
. "$(dirname "$0")/lib.sh"
FAKE=$TOOLS/fake-cuda/ckpt-train-cuda.so
need_built "$TRAIN" "$CKPT" "$FAKE"
common=(--data synthetic --layers 24,16,4 --val-split 2000 --batch-size 50 --threads 1 --no-sync --quiet)
fake() { CKPT_TRAIN_CUDA_PLUGIN=$FAKE "$TRAIN" "$@"; }
# a machine without a GPU: no plug-in at all (the real one, if built, would say "no driver")
nogpu() { CKPT_TRAIN_CUDA_PLUGIN=$WORK/no-such-plugin.so "$TRAIN" "$@"; }
one_line() { [ "$(wc -l <"$1")" -eq 1 ] || fail "$2: stderr is not one line: $(cat "$1")"; }

# ---- training on "cuda:0" records cuda:0 ----------------------------------------------------------
fake --store "$WORK/s" --device cuda --epochs 2 "${common[@]}" || fail "training on the fake cuda"
"$CKPT" show "$WORK/s" 2 | grep -q '^fc1.weight float32 \[16,24\] cuda:0 ' || fail "fc1.weight not recorded as cuda:0"
"$CKPT" show "$WORK/s" 2 | grep -q 'momentum_buffer .* cuda:0 ' || fail "optimizer state not recorded as cuda:0"
"$CKPT" cat "$WORK/s" epoch-0002/metrics.json | grep -q '"cuda:0"' || fail "metrics.json does not name cuda:0"
echo "ok: a run on cuda:0 records its tensors as cuda:0"

# ---- resume keeps the device ------------------------------------------------------------------------
before=$(sha256sum <"$WORK/s/data.mdb")
nogpu --store "$WORK/s" --resume --epochs 3 --quiet 2>"$WORK/err"
rc=$?
[ $rc -eq 1 ] || fail "resume of a cuda run without a GPU: exit $rc, expected 1"
one_line "$WORK/err" "resume without a GPU"
grep -q "^ckpt-train: error: the run trained on cuda:0, and this machine has no cuda:0 (.*); pass --device cpu to continue on the CPU" "$WORK/err" ||
	fail "resume without a GPU: $(cat "$WORK/err")"
[ "$(sha256sum <"$WORK/s/data.mdb")" = "$before" ] || fail "the refused resume changed the store"
echo "ok: resuming a cuda run without a GPU: $(cut -c1-120 "$WORK/err")..."

cp -a "$WORK/s" "$WORK/s-cpu"
fake --store "$WORK/s" --resume --epochs 3 --quiet 2>"$WORK/err" || fail "resume on the fake cuda: $(cat "$WORK/err")"
[ ! -s "$WORK/err" ] || fail "resume on the run's own device printed: $(cat "$WORK/err")"
"$CKPT" show "$WORK/s" 3 | grep -q '^fc1.weight .* cuda:0 ' || fail "the resumed epoch is not on cuda:0"
fake --store "$WORK/straight" --device cuda:0 --epochs 3 "${common[@]}" || fail "straight run"
[ "$("$CKPT" show "$WORK/s" 3)" = "$("$CKPT" show "$WORK/straight" 3)" ] ||
	fail "2 epochs + --resume on cuda:0 differ from 3 straight"
echo "ok: --resume without --device continues on cuda:0, bit-exactly"

nogpu --store "$WORK/s-cpu" --resume --epochs 3 --device cpu --quiet 2>"$WORK/err" ||
	fail "resume --device cpu: $(cat "$WORK/err")"
one_line "$WORK/err" "resume --device cpu"
grep -q "^ckpt-train: note: --device cpu differs from the run's cuda:0" "$WORK/err" ||
	fail "resume --device cpu: $(cat "$WORK/err")"
"$CKPT" show "$WORK/s-cpu" 3 | grep -q '^fc1.weight .* cpu ' || fail "the epoch resumed on the cpu is not recorded as cpu"
fake --store "$WORK/s-cpu" --resume --epochs 4 --device cuda --quiet 2>"$WORK/err" || fail "resume --device cuda"
grep -q "note: --device cuda differs from the run's cpu" "$WORK/err" || fail "cpu -> cuda: $(cat "$WORK/err")"
fake --store "$WORK/s-cpu" --resume --epochs 5 --device cuda --quiet 2>"$WORK/err" || fail "resume --device cuda"
[ ! -s "$WORK/err" ] || fail "--device cuda on a cuda:0 run printed: $(cat "$WORK/err")"
echo "ok: --device moves a resumed run, with a note when it differs from the run's device"

# ---- the view's .pt files from cuda:0 tensors -------------------------------------------------------
PY=
for cand in "${TORCH_PYTHON:-}" "${PYTHON:-}" python3 /usr/bin/python3; do
	[ -n "$cand" ] && "$cand" -c 'import torch' 2>/dev/null && PY=$cand && break
done
if [ -n "$PY" ]; then
	"$CKPT" cat "$WORK/s" epoch-0003/model.pt >"$WORK/model.pt" || fail "ckpt cat model.pt"
	"$CKPT" cat --map-location keep "$WORK/s" epoch-0003/model.pt >"$WORK/keep.pt" || fail "ckpt cat --map-location keep"
	"$PY" - "$WORK/model.pt" "$WORK/keep.pt" <<'PY' || fail "the .pt files of cuda:0 tensors"
import sys, torch
sd = torch.load(sys.argv[1])  # no map_location: storages were remapped to cpu
assert sd and all(t.device.type == "cpu" for t in sd.values()), {k: t.device for k, t in sd.items()}
if not torch.cuda.is_available():
    try:
        torch.load(sys.argv[2])
        raise SystemExit("map_location=keep loaded without CUDA: the tag is not cuda:0")
    except RuntimeError as e:
        assert "CUDA" in str(e), e
keep = torch.load(sys.argv[2], map_location="cpu")
assert all(torch.equal(keep[k], sd[k]) for k in sd)
PY
	echo "ok: model.pt of cuda:0 tensors loads on the cpu; --map-location keep keeps cuda:0"
else
	echo "SKIP: the .pt checks: no python3 with torch"
fi

# ---- device memory, device index ------------------------------------------------------------------
# refused WHAT STORE PATTERN [VAR=VALUE...] -- ARGS...: ckpt-train --store STORE ARGS on the
# fake, with the variables set, exits 1 with one stderr line matching PATTERN
refused() {
	local what=$1 store=$2 pattern=$3 rc
	shift 3
	local envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	env "${envs[@]}" CKPT_TRAIN_CUDA_PLUGIN="$FAKE" "$TRAIN" --store "$store" "$@" 2>"$WORK/err"
	rc=$?
	[ $rc -eq 1 ] || fail "$what: exit $rc, expected 1: $(cat "$WORK/err")"
	one_line "$WORK/err" "$what"
	grep -q "$pattern" "$WORK/err" || fail "$what: $(cat "$WORK/err")"
}
refused "a model bigger than the GPU" "$WORK/big" \
	"^ckpt-train: error: out of GPU memory on cuda:0: this run needs 3.3 GiB there (parameters 1.0 GiB, gradients 1.0 GiB, optimizer state 1.0 GiB, .* cuda:0 has 1.0 GiB free of 1.0 GiB (--layers 24,16384,16384,4" \
	CKPT_FAKE_CUDA_MEMORY=$((1 << 30)) -- --device cuda --epochs 1 "${common[@]}" --layers 24,16384,16384,4
[ ! -e "$WORK/big" ] || fail "the refused run created its store"
echo "ok: $(cut -c1-150 "$WORK/err")..."
refused "cuda:1 of 1" "$WORK/idx" \
	"device cuda:1 is not supported on this machine: no CUDA device cuda:1: index out of range" \
	-- --device cuda:1 --epochs 1 "${common[@]}"
[ ! -e "$WORK/idx" ] || fail "cuda:1 created a store"

# ---- a device failure mid-run ---------------------------------------------------------------------
refused "device failure in epoch 1" "$WORK/f1" \
	"^ckpt-train: error: CUDA gemm failed on cuda:0 (.*) in epoch 1 (batch [0-9]*/160); nothing was saved" \
	CKPT_FAKE_CUDA_FAIL_AFTER_GEMMS=100 -- --device cuda --epochs 2 "${common[@]}"
[ ! -e "$WORK/f1" ] || fail "a device failure before the first checkpoint left the store behind"
refused "device failure in epoch 2" "$WORK/f2" \
	"in epoch 2 (batch [0-9]*/160); the store ends at epoch 1" \
	CKPT_FAKE_CUDA_FAIL_AFTER_GEMMS=1000 -- --device cuda --epochs 3 "${common[@]}"
"$CKPT" verify "$WORK/f2" >/dev/null || fail "the store of the failed run does not verify"
"$CKPT" show "$WORK/f2" 1 >/dev/null && ! "$CKPT" show "$WORK/f2" 2 >/dev/null 2>&1 ||
	fail "the failed run's store should end at epoch 1"
refused "failed checkpoint copy" "$WORK/f3" \
	"^ckpt-train: error: cannot checkpoint epoch 1: CUDA cudaEventSynchronize failed on cuda:0" \
	CKPT_FAKE_CUDA_FAIL_SNAPSHOT=1 -- --device cuda --epochs 2 "${common[@]}"
[ ! -e "$WORK/f3" ] || fail "a failed first checkpoint copy left the store behind"
echo "ok: device failures stop the run: no empty store left, a store ends at its last committed epoch"
