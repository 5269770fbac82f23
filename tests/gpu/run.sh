#!/usr/bin/env bash
# tests/gpu/run.sh - the GPU checks of ckpt-train's CUDA backend (issue 5, item 4)
#
# Run on a machine with an NVIDIA GPU and driver. The programs come from, in order: the GPU
# bundle named by CKPT_GPU_BUNDLE (build/gpu-bundle.tar.xz from `make gpu-bundle`, or its unpacked
# directory: for a machine without ckptfs's build dependencies), the directory CKPT_BIN_DIR (the
# plug-in beside the programs or in ../lib), build/ when it holds them, else `make CUDA=1`. Checks:
#   1. --device cuda trains a few epochs; tensors are recorded as cuda:0; the GPU unit suite
#      (check_train_cuda, CUDA ops vs CPU ops) passes when it is built (the bundle has one)
#   2. bad input: --device cuda:N past the last GPU, and layers too big for GPU memory: one
#      error line naming the device (and the size), exit 1, no store
#   3. the mount (or `ckpt cat` of the same view, where /dev/fuse is missing): model.pt and
#      checkpoint.pt load with a plain torch.load (torch >= 2.6: weights_only=True) with the GPU
#      hidden (CUDA_VISIBLE_DEVICES=) and no map_location; with -o map_location=keep they load
#      straight onto the GPU
#   4. model.safetensors loads with the real safetensors package, equal to model.pt
#   5. cpu and cuda runs from the same seed agree: after 4 steps to float rounding (max |diff|
#      of the parameters < 1e-5), after 1 full epoch in their metrics (train_loss within 0.01,
#      val/test accuracy within 0.02, val/test loss within 0.05; the parameters' max difference
#      is printed: GEMM summation order differs between OpenBLAS and cuBLAS, and over 430 steps
#      of lr 0.1 momentum 0.9 that grows: 0.28 on an H100, 0.06 between OpenBLAS at 1 and 2
#      threads);
#      two cuda runs are bit-identical; k epochs + --resume on cuda (no --device: the run's)
#      equal the straight run; snapshots through the device-side shadow equal direct ones
#      (CKPT_TRAIN_CUDA_SNAPSHOT=direct)
#   6. a PyTorch user goes on on the GPU: checkpoint.pt of an AdamW run (cosine schedule, weight
#      decay) loaded with map_location='cuda' fills an MLP and torch.optim.AdamW, whose state is
#      on the GPU and which takes a step; -o map_location=cuda serves model.pt on the GPU
# Exits 77 with a SKIP line when there is no GPU or driver; lines "SKIP: <check>: <why>" name
# checks that could not run (a Python package missing); exit 0 only if every check that ran
# passed. Environment: PYTHON (default python3), GPU_EPOCHS (default 3), CKPT_GPU_BUNDLE,
# CKPT_BIN_DIR, GPU_STEP_TIMEOUT (seconds one program may run, default 180).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
. tests/gpu/bundle_env.sh
PY=${PYTHON:-python3}
EPOCHS=${GPU_EPOCHS:-3}
# a hung GPU call must not eat the whole run: every program gets a time limit
T=(timeout -k 5 "${GPU_STEP_TIMEOUT:-180}")
work=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-gpu.XXXXXX")
mounts=() pids=()
cleanup() {
	local m p
	for m in "${mounts[@]+"${mounts[@]}"}"; do
		fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
	done
	for p in "${pids[@]+"${pids[@]}"}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT
failures=0 skips=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
die() { echo "FAIL: $*"; exit 1; }
skip() { echo "SKIP: $*"; skips=$((skips + 1)); }
ok() { echo "ok: $*"; }

# ---- a GPU and a driver? --------------------------------------------------------------------
if ! command -v nvidia-smi >/dev/null 2>&1 && [ ! -e /dev/nvidia0 ] && [ ! -e /dev/nvidiactl ]; then
	echo "SKIP: tests/gpu/run.sh: no GPU/driver (no nvidia-smi, no /dev/nvidia*)"
	exit 77
fi
if command -v nvidia-smi >/dev/null 2>&1; then
	gpus=$(nvidia-smi -L 2>&1) || {
		echo "SKIP: tests/gpu/run.sh: no GPU/driver (nvidia-smi: $(head -n 1 <<<"$gpus"))"
		exit 77
	}
	echo "GPU: $(head -n 1 <<<"$gpus")"
	ngpu=$(grep -c '^GPU ' <<<"$gpus")
else
	ngpu=1
fi

# ---- binaries: a bundle, prebuilt or built here ------------------------------------------------
if [ -n "${CKPT_GPU_BUNDLE:-}" ]; then
	gpu_bundle_use "$CKPT_GPU_BUNDLE" "$work" || exit 1
fi
BIN=${CKPT_BIN_DIR:-$ROOT/build/bin}
plugin_of() {
	local d=$1
	for f in "$d/ckpt-train-cuda.so" "$d/../lib/ckpt-train-cuda.so"; do
		[ -e "$f" ] && { echo "$f"; return 0; }
	done
	return 1
}
if [ ! -x "$BIN/ckpt-train" ] || ! plugin_of "$BIN" >/dev/null; then
	[ -z "${CKPT_BIN_DIR:-}" ] || die "CKPT_BIN_DIR=$CKPT_BIN_DIR lacks ckpt-train or ckpt-train-cuda.so"
	echo "building: make -j$(nproc) CUDA=1 all"
	make -j"$(nproc)" CUDA=1 all >"$work/build.log" 2>&1 || {
		tail -n 20 "$work/build.log"
		die "make CUDA=1 failed (copy binaries built elsewhere into build/, or set CKPT_BIN_DIR)"
	}
fi
PLUGIN=$(plugin_of "$BIN") || die "no ckpt-train-cuda.so beside $BIN"
PLUGIN=$(readlink -f "$PLUGIN")
TRAIN=("${T[@]}" "$BIN/ckpt-train") CKPT=$BIN/ckpt CKPTFS=$BIN/ckptfs
echo "python: $("$PY" -c 'import sys, numpy; print(sys.version.split()[0], "numpy", numpy.__version__)' 2>&1 | tail -n 1); torch: $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' 2>&1 | tail -n 1)"
missing=$(ldd "$PLUGIN" 2>/dev/null | grep "not found")
[ -z "$missing" ] || die "the CUDA plug-in lacks libraries (copy them beside it; it has rpath \$ORIGIN): $missing"

# Fashion-MNIST: the bundle's copy, the machine's, else the synthetic set (10000 + 2000)
DATA=synthetic NTRAIN=10000
if [ -n "${GPU_DATA:-}" ]; then
	DATA=$GPU_DATA NTRAIN=60000
elif [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
	DATA=fashion-mnist NTRAIN=60000
fi
common=(--data "$DATA" --layers 784,256,128,10 --batch-size 128 --seed 1 --quiet --no-sync)

# ---- 1. training on cuda ----------------------------------------------------------------------
S=$work/cuda
t0=$(date +%s%N)
"${TRAIN[@]}" --store "$S" --device cuda --epochs "$EPOCHS" "${common[@]}" 2>"$work/err" ||
	die "training on cuda: $(cat "$work/err")"
ok "trained $EPOCHS epochs on cuda ($DATA) in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
last=$(printf 'epoch-%04d' "$EPOCHS")
"$CKPT" verify "$S" >/dev/null || fail "ckpt verify of the cuda store"
show=$("$CKPT" show "$S" "$EPOCHS") || die "ckpt show"
grep -q 'fc1.weight.*cuda:0' <<<"$show" || fail "fc1.weight is not recorded as cuda:0: $(head -n 3 <<<"$show")"
grep -q 'momentum_buffer.*cuda:0' <<<"$show" || fail "optimizer state is not recorded as cuda:0"
# the unit suite: the bundle's (no sanitizers), else the ASan build's, told to leave CUDA the
# address range it wants
unit=()
if [ -n "${GPU_BUNDLE:-}" ] && [ -x "$GPU_BUNDLE/bin/check_train_cuda" ]; then
	unit=(env CKPT_TRAIN_CUDA_PLUGIN="$PLUGIN" "$GPU_BUNDLE/bin/check_train_cuda")
elif [ -x build/asan/tests/check_train_cuda ]; then
	unit=(env CKPT_TRAIN_CUDA_PLUGIN="$PLUGIN" ASAN_OPTIONS=protect_shadow_gap=0:detect_leaks=0
		"$ROOT/build/asan/tests/check_train_cuda")
fi
if [ ${#unit[@]} -gt 0 ]; then
	out=$(cd "$work" && CK_DEFAULT_TIMEOUT=300 "${T[@]}" "${unit[@]}" 2>&1)
	# a failure first; the suite's no-GPU test says SKIP wherever a GPU is present, so only a
	# skipped GPU test (no device after all) makes the suite a skip
	if ! grep -q 'Failures: 0, Errors: 0' <<<"$out"; then
		fail "check_train_cuda: $out"
	elif grep -q -E '^SKIP: test_cuda_(ops_match_cpu|training_matches_cpu):' <<<"$out"; then
		skip "check_train_cuda: $(grep -E '^SKIP: test_cuda_' <<<"$out" | head -n 1)"
	else
		ok "check_train_cuda: $(grep 'cuda vs cpu' <<<"$out")"
	fi
fi

# ---- 2. bad input -----------------------------------------------------------------------------
"${TRAIN[@]}" --store "$work/bad" --device "cuda:$ngpu" "${common[@]}" --epochs 1 2>"$work/err"
rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "cuda:$ngpu.*out of range" "$work/err" &&
	[ ! -e "$work/bad" ]; then
	ok "cuda:$ngpu refused: $(cat "$work/err")"
else
	fail "cuda:$ngpu (past the last GPU): exit $rc: $(cat "$work/err")"
fi
# five 65536 x 65536 layers: 86 GB of weights, 258 GB with gradients and momentum: more than
# any GPU (H100 80 GB, H200 141 GB). The device's memory is checked before the host's (whose
# 2 pinned staging slots, 344 GB, would not fit a 128 GiB machine either), so the refusal names
# the GPU and the sizes
"${TRAIN[@]}" --store "$work/bad" --device cuda --layers 784,65536,65536,65536,65536,65536,65536,10 --data synthetic \
	--epochs 1 --quiet 2>"$work/err"
rc=$?
if [ $rc -eq 1 ] && [ "$(wc -l <"$work/err")" -eq 1 ] &&
	grep -q "out of GPU memory on cuda:0: this run needs .* there (parameters .*) and cuda:0 has .* free of " "$work/err" &&
	[ ! -e "$work/bad" ]; then
	ok "too big for the GPU refused: $(cat "$work/err")"
else
	fail "layers too big for GPU memory: exit $rc: $(cat "$work/err")"
fi

# ---- 3, 4. the files: torch.load without map_location, map_location=keep, safetensors ------------
have_torch=0 have_cuda_torch=0 have_st=0
"$PY" -c 'import torch' 2>/dev/null && have_torch=1
[ $have_torch = 1 ] && "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null &&
	have_cuda_torch=1
"$PY" -c 'import safetensors.torch' 2>/dev/null && have_st=1

# files of the view: through a mount, or `ckpt cat` (the same renderer) without /dev/fuse
use_mount=0
if [ -c /dev/fuse ] && command -v fusermount3 >/dev/null && (exec 3<>/dev/fuse) 2>/dev/null; then
	use_mount=1
fi
# view DIR [ckptfs -o option]: DIR holds $last's model.pt, checkpoint.pt, model.safetensors
view() {
	local dir=$1 opt=${2:-}
	if [ $use_mount = 1 ]; then
		mkdir -p "$dir"
		"$CKPTFS" "$S" "$dir" -f ${opt:+-o "$opt"} 2>>"$work/ckptfs.log" &
		pids+=($!)
		mounts+=("$dir")
		for _ in $(seq 1 100); do
			awk -v m="$dir" '$2 == m {f = 1} END {exit !f}' /proc/self/mounts && break
			sleep 0.05
		done
		VIEW=$dir/$last
		if ! awk -v m="$dir" '$2 == m {f = 1} END {exit !f}' /proc/self/mounts; then
			# /dev/fuse opened but mounting failed here: the same view through ckpt cat
			skip "mount: ckptfs could not mount ($(tail -n 1 "$work/ckptfs.log")); files come from 'ckpt cat'"
			kill "${pids[-1]}" 2>/dev/null
			use_mount=0
			view "$@"
			return
		fi
	else
		local cat_opt=()
		case $opt in
		'') ;;
		map_location=*) cat_opt=(--map-location "${opt#map_location=}") ;;
		*) return 1 ;;
		esac
		mkdir -p "$dir/$last"
		for f in model.pt checkpoint.pt model.safetensors; do
			"$CKPT" cat "${cat_opt[@]}" "$S" "$last/$f" >"$dir/$last/$f" || return 1
		done
		VIEW=$dir/$last
	fi
}
[ $use_mount = 1 ] || skip "mount: /dev/fuse unusable here; files come from 'ckpt cat' (the same view)"

if [ $have_torch = 0 ]; then
	skip "torch.load checks: $PY has no torch"
else
	view "$work/mnt" || die "cannot present the store's files"
	CUDA_VISIBLE_DEVICES= "$PY" - "$VIEW" <<'PY' && ok "plain torch.load (the version's default weights_only) with the GPU hidden and no map_location" || fail "torch.load with CUDA_VISIBLE_DEVICES="
import sys, torch
d = sys.argv[1]
assert not torch.cuda.is_available()
# torch.load's defaults: weights_only=True from torch 2.6 on, False before
sd = torch.load(f"{d}/model.pt")
assert sd and all(t.device.type == "cpu" for t in sd.values()), {k: t.device for k, t in sd.items()}
ck = torch.load(f"{d}/checkpoint.pt")
if int(torch.__version__.split(".")[0]) >= 2:  # 1.13's weights-only unpickler lacks BINFLOAT
    for f in ("model.pt", "checkpoint.pt"):
        torch.load(f"{d}/{f}", weights_only=True)
assert all(t.device.type == "cpu" for t in ck["model"].values())
for st in ck["optimizer"]["state"].values():
    assert all(v.device.type == "cpu" for v in st.values() if torch.is_tensor(v))
sizes = [784, 256, 128, 10]
m = torch.nn.Module()
for i in range(3):
    setattr(m, f"fc{i+1}", torch.nn.Linear(sizes[i], sizes[i + 1]))
m.load_state_dict(sd, strict=True)
print("  torch", torch.__version__, "model.pt:", len(sd), "tensors on cpu; checkpoint.pt epoch", ck.get("epoch"))
PY
	if [ $have_cuda_torch = 0 ]; then
		skip "map_location=keep: $PY's torch has no CUDA"
	else
		view "$work/keep" map_location=keep || die "mount with map_location=keep"
		"$PY" - "$VIEW" <<'PY' && ok "map_location=keep loads straight onto the GPU" || fail "map_location=keep"
import sys, torch
sd = torch.load(f"{sys.argv[1]}/model.pt")
assert all(t.is_cuda and t.device.index == 0 for t in sd.values()), {k: t.device for k, t in sd.items()}
cpu = torch.load(f"{sys.argv[1]}/model.pt", map_location="cpu")
assert all(torch.equal(cpu[k], sd[k].cpu()) for k in sd)
PY
	fi
	if [ $have_st = 0 ]; then
		skip "safetensors: $PY has no safetensors package"
	else
		"$PY" - "$VIEW" <<'PY' && ok "model.safetensors loads with the safetensors package" || fail "safetensors"
import sys, torch
from safetensors.torch import load_file
st = load_file(f"{sys.argv[1]}/model.safetensors")
pt = torch.load(f"{sys.argv[1]}/model.pt", map_location="cpu")
assert sorted(st) == sorted(pt), (sorted(st), sorted(pt))
assert all(torch.equal(st[k], pt[k]) for k in st)
PY
	fi
fi

# ---- 5. cpu vs cuda, reproducibility, resume ---------------------------------------------------
# compare STORE_A STORE_B STEPS|epoch: the parameters after a few steps (max |diff| < 1e-5), or
# after a full epoch: the max difference reported, the metrics compared
compare() {
	"$PY" - "$CKPT" "$@" <<'PY'
import io, json, subprocess, sys
import numpy as np
ckpt, a, b, what = sys.argv[1:]
def cat(store, path):
    return subprocess.run([ckpt, "cat", store, f"epoch-0001/{path}"], check=True,
                          capture_output=True).stdout
worst = 0.0
for l in (1, 2, 3):
    for p in ("weight", "bias"):
        x, y = (np.load(io.BytesIO(cat(s, f"model/fc{l}.{p}.npy"))) for s in (a, b))
        worst = max(worst, float(np.abs(x - y).max()))
if what != "epoch":
    print(f"after {what} steps: max |difference| of the parameters {worst:.3g} (limit 1e-5)")
    sys.exit(0 if worst < 1e-5 else 1)
ma, mb = (json.loads(cat(s, "metrics.json"))["metrics"] for s in (a, b))
limits = {"train_loss": 0.01, "val_acc": 0.02, "test_acc": 0.02, "val_loss": 0.05, "test_loss": 0.05}
bad = [f"{k} {ma[k]:.4f} vs {mb[k]:.4f}" for k, lim in limits.items()
       if k in ma and not abs(ma[k] - mb[k]) <= lim]
print(f"after 1 epoch: max |difference| of the parameters {worst:.3g}; " +
      ", ".join(f"{k} {ma[k]:.4f} vs {mb[k]:.4f}" for k in limits if k in ma) +
      ("; beyond the limits: " + ", ".join(bad) if bad else ""))
sys.exit(1 if bad else 0)
PY
}
# 4 steps of 128: all but 512 training samples validate
few=(--val-split $((NTRAIN - 512)))
"${TRAIN[@]}" --store "$work/cpu4" --device cpu --epochs 1 "${common[@]}" "${few[@]}" || die "cpu run (4 steps)"
"${TRAIN[@]}" --store "$work/cuda4" --device cuda --epochs 1 "${common[@]}" "${few[@]}" || die "cuda run (4 steps)"
diff=$(compare "$work/cpu4" "$work/cuda4" 4) && ok "cpu and cuda agree $diff" || fail "cpu and cuda disagree $diff"
"${TRAIN[@]}" --store "$work/cpu1" --device cpu --epochs 1 "${common[@]}" || die "cpu run"
"${TRAIN[@]}" --store "$work/cuda1" --device cuda --epochs 1 "${common[@]}" || die "cuda run"
"${TRAIN[@]}" --store "$work/cuda1b" --device cuda --epochs 1 "${common[@]}" || die "cuda run 2"
diff=$(compare "$work/cpu1" "$work/cuda1" epoch) && ok "cpu and cuda agree $diff" ||
	fail "cpu and cuda disagree $diff"
# same_ckpt STORE_A STORE_B EPOCH...: the epochs hold the same tensors, CRC for CRC
same_ckpt() {
	local a=$1 b=$2 e x y
	shift 2
	for e in "$@"; do
		x=$("$CKPT" show "$a" "$e") && y=$("$CKPT" show "$b" "$e") && [ -n "$x" ] && [ "$x" = "$y" ] ||
			return 1
	done
}
if same_ckpt "$work/cuda1" "$work/cuda1b" 1; then
	ok "two cuda runs are bit-identical"
else
	fail "two cuda runs from the same seed differ"
fi
"${TRAIN[@]}" --store "$work/res" --device cuda --epochs 1 "${common[@]}" || die "cuda part 1"
"${TRAIN[@]}" --store "$work/res" --resume --epochs 2 --quiet || die "cuda resume"
"${TRAIN[@]}" --store "$work/straight" --device cuda --epochs 2 "${common[@]}" || die "cuda straight"
if same_ckpt "$work/res" "$work/straight" 2 && "$CKPT" show "$work/res" 2 | grep -q 'fc1.weight.*cuda:0'; then
	ok "cuda resume (without --device: the run's) is bit-exact"
else
	fail "cuda: 1 epoch + resume differs from 2 straight"
fi
# Adam (its step tensors are written into the staging buffer on the host, beside the copies)
"${TRAIN[@]}" --store "$work/adam" --device cuda --epochs 2 --optimizer adam --lr 0.001 "${common[@]}" ||
	die "cuda run with --optimizer adam"
CKPT_TRAIN_CUDA_SNAPSHOT=direct "${TRAIN[@]}" --store "$work/adam-direct" --device cuda --epochs 2 \
	--optimizer adam --lr 0.001 "${common[@]}" || die "cuda run with CKPT_TRAIN_CUDA_SNAPSHOT=direct"
if same_ckpt "$work/adam" "$work/adam-direct" 1 2; then
	ok "snapshots through the device-side shadow equal direct ones (adam, epochs 1 and 2)"
else
	fail "the shadow and the direct snapshot paths recorded different checkpoints (adam)"
fi

# ---- 6. a PyTorch user goes on from checkpoint.pt on the GPU ----------------------------------
if [ $have_cuda_torch = 0 ]; then
	skip "going on in PyTorch on the GPU: $PY's torch has no CUDA"
else
	"${TRAIN[@]}" --store "$work/adamw" --device cuda --epochs 2 --optimizer adamw --lr 0.001 \
		--weight-decay 0.01 --lr-schedule cosine "${common[@]}" || die "cuda run with --optimizer adamw"
	S=$work/adamw last=epoch-0002
	view "$work/adamw-cpu" || die "cannot present the adamw store's files"
	cpu_view=$VIEW
	view "$work/adamw-cuda" map_location=cuda || die "mount with map_location=cuda"
	"$PY" - "$cpu_view" "$VIEW" <<'PY' && ok "checkpoint.pt (map_location='cuda') resumes an MLP and torch.optim.AdamW on the GPU; -o map_location=cuda gives cuda tensors" || fail "going on in PyTorch on the GPU from checkpoint.pt"
import sys, torch
import torch.nn.functional as F
cpu_dir, cuda_dir = sys.argv[1:]
class MLP(torch.nn.Module):
    def __init__(self, sizes):
        super().__init__()
        self.n = len(sizes) - 1
        for i in range(self.n):
            setattr(self, f"fc{i + 1}", torch.nn.Linear(sizes[i], sizes[i + 1]))
    def forward(self, x):
        for i in range(self.n):
            x = getattr(self, f"fc{i + 1}")(x)
            x = torch.relu(x) if i < self.n - 1 else x
        return x
ck = torch.load(f"{cpu_dir}/checkpoint.pt", map_location="cuda")
assert ck["epoch"] == 2, ck["epoch"]
m = MLP([784, 256, 128, 10]).cuda()
m.load_state_dict(ck["model"], strict=True)
opt = torch.optim.AdamW(m.parameters())
opt.load_state_dict(ck["optimizer"])
g = opt.param_groups[0]
assert abs(g["weight_decay"] - 0.01) < 1e-12 and g["betas"] == (0.9, 0.999), g
state = [opt.state[p] for p in m.parameters()]
assert all(s["exp_avg"].is_cuda and s["exp_avg_sq"].is_cuda for s in state)
steps = [float(s["step"]) for s in state]
assert len(set(steps)) == 1 and steps[0] > 0, steps
x = torch.randn(64, 784, device="cuda")
y = torch.randint(0, 10, (64,), device="cuda")
F.cross_entropy(m(x), y).backward()
opt.step()
assert all(float(opt.state[p]["step"]) == steps[0] + 1 for p in m.parameters())
sd = torch.load(f"{cuda_dir}/model.pt")
assert all(t.is_cuda for t in sd.values()), {k: t.device for k, t in sd.items()}
assert all(torch.equal(sd[k], ck["model"][k]) for k in sd)
print(f"  AdamW step {steps[0]:.0f} -> {steps[0] + 1:.0f} on {torch.cuda.get_device_name(0)}")
PY
fi

echo "gpu checks: $failures failed, $skips skipped"
[ $failures -eq 0 ]
