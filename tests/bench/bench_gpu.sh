#!/usr/bin/env bash
# tests/bench/bench_gpu.sh - ckpt-train on the GPU: the cost of checkpointing every epoch (stall
# ratio, goal <= 1.02) and epochs/s against PyTorch on the same GPU doing the same training with
# torch.save of model + optimizer every epoch (goal: not slower). Skips without a GPU.
#
# ckpt-train's steady epoch time is (T(1 + E epochs) - T(1 epoch)) / E of whole runs, so start-up
# (data loading, CUDA and cuBLAS initialization) and the first epoch's warm-up cancel out; the
# baseline is the same loop with CKPT_TRAIN_BENCH_NO_CHECKPOINT=1 (no snapshot, no commit).
# Stores are written with fsync, as PyTorch's checkpoints (flush + fsync). PyTorch's figure is
# the median epoch time of epochs 2..E+1 of tests/bench/train_torch_gpu_peer.py. Two models: the
# default MLP (784,256,128,10, batch 128) and a wide one (784,4096,4096,10, batch 512: a 160 MB
# checkpoint per epoch, parameters + momentum). Medians of BENCH_RUNS (default 3) alternating
# runs. On cuda the checkpointed runs are also timed with CKPT_TRAIN_CUDA_SNAPSHOT=direct (the
# snapshot read straight from the live buffers over PCIe, no device-side shadow): "direct"
# (BENCH_DIRECT=0 leaves these runs out).
# Environment: BENCH_RUNS, BENCH_GPU_EPOCHS (default 10), TORCH_PYTHON (python3), CKPT_GPU_BUNDLE
# (build/gpu-bundle.tar.xz or its directory: programs for a machine without the build
# dependencies, tests/gpu/bundle_env.sh), CKPT_BIN_DIR (prebuilt programs, default build/bin),
# BENCH_MODELS ("LAYERS BATCH;..." to replace the two models), BENCH_DEVICE=cpu (the same stall
# measurement of the CPU backend, without the PyTorch GPU peer; runs without a GPU),
# BENCH_STEP_TIMEOUT (seconds one program may run, default 300), TMPDIR (where stores and .pt
# files go; /dev/shm takes the disk out). Each run's longer checkpointed run also prints its
# commits (CKPT_TRAIN_BENCH_STATS=1): size, mean commit time, and how long training waited.
# Data: Fashion-MNIST for both sides (the bundle's copy, GPU_DATA, else the machine's); without
# it both train the same-sized synthetic set (ckpt-train's: 10000 training + 2000 test samples,
# 1000 of them validating) and a note says the epochs are small.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tests/gpu/bundle_env.sh
RUNS=${BENCH_RUNS:-3}
E=${BENCH_GPU_EPOCHS:-10}
PY=${TORCH_PYTHON:-python3}
DEVICE=${BENCH_DEVICE:-cuda}
if [ "$DEVICE" = cpu ]; then
	gpu="no GPU: --device cpu, $(grep -m 1 'model name' /proc/cpuinfo | sed 's/.*: //')"
elif ! command -v nvidia-smi >/dev/null 2>&1 || ! gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -n 1) || [ -z "$gpu" ]; then
	echo "bench_gpu: skipped (no GPU/driver: nvidia-smi finds no GPU)"
	exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${CKPT_GPU_BUNDLE:-}" ]; then
	gpu_bundle_use "$CKPT_GPU_BUNDLE" "$work" || exit 1
fi
T=(timeout -k 5 "${BENCH_STEP_TIMEOUT:-300}")
BIN=${CKPT_BIN_DIR:-build/bin}
if [ -z "${CKPT_BIN_DIR:-}" ]; then
	make -s --no-print-directory $([ "$DEVICE" = cpu ] || echo CUDA=1) all || exit 1
fi
# DATA for the PyTorch peer, data_arg for ckpt-train: the same samples, the same validation split
DATA=/usr/share/datasets/fashion-mnist data_arg=fashion-mnist VAL=5000
if [ -n "${GPU_DATA:-}" ]; then
	DATA=$GPU_DATA data_arg=$GPU_DATA
elif ! [ -e "$DATA/train-images-idx3-ubyte.gz" ] && ! [ -e "$DATA/train-images-idx3-ubyte" ]; then
	DATA=synthetic data_arg=synthetic VAL=1000
	echo "note: no Fashion-MNIST: both sides train the synthetic set (9000 samples per epoch, 1000 validating, 2000 test): small epochs, where a checkpoint weighs more than on real data"
fi
have_torch=0
if [ "$DEVICE" != cpu ] &&
	"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
	have_torch=1
fi
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# seconds of one whole ckpt-train run: run_train EPOCHS LAYERS BATCH [env...]
run_train() {
	local epochs=$1 layers=$2 batch=$3
	shift 3
	rm -rf "$work/store"
	local t0 t1
	t0=$(date +%s%N)
	"${T[@]}" env "$@" "$BIN/ckpt-train" --store "$work/store" --device "$DEVICE" --data "$data_arg" \
		--layers "$layers" --batch-size "$batch" --val-split "$VAL" --optimizer sgd --lr 0.1 --momentum 0.9 \
		--epochs "$epochs" --quiet 2>"$work/stderr" || {
		cat "$work/stderr" >&2
		return 1
	}
	grep -v '^ckpt-train: commit stats: ' "$work/stderr" >&2
	t1=$(date +%s%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f\n", (b - a) / 1e9 }'
}

echo "machine: $gpu; $(nproc) CPUs; $(uname -r)"
echo "data: $DATA; $E steady epochs per run; $RUNS runs; stores and .pt files in $(df -P "$work" | awk 'NR == 2 { print $1 }') with fsync"
# what the disk takes to write and fdatasync as much as a wide model's checkpoint (zeros: storage
# that compresses or skips them looks faster): no commit writes faster, and a commit that takes
# longer than an epoch holds the next epoch up
disk=()
for r in 1 2 3; do
	t0=$(date +%s%N)
	dd if=/dev/zero of="$work/dd" bs=1M count=160 conv=fdatasync status=none || break
	t1=$(date +%s%N)
	rm -f "$work/dd"
	disk+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", 160 * 1048576 / ((b - a) / 1e9) / 1e6 }')")
done
[ ${#disk[@]} -eq 0 ] || echo "disk: dd of 160 MiB + fdatasync: $(printf '%s\n' "${disk[@]}" | median) MB/s (median of ${#disk[@]})"
IFS=';' read -r -a models <<<"${BENCH_MODELS:-784,256,128,10 128;784,4096,4096,10 512}"
for cfg in "${models[@]}"; do
	read -r layers batch <<<"$cfg"
	ck=() no=() dr=() tsave=() tnosave=()
	for r in $(seq 1 "$RUNS"); do
		a1=$(run_train 1 "$layers" "$batch") || exit 1
		aN=$(run_train $((E + 1)) "$layers" "$batch" CKPT_TRAIN_BENCH_STATS=1) || exit 1
		stats=$(sed -n 's/^ckpt-train: commit stats: //p' "$work/stderr")
		if [ "$DEVICE" != cpu ] && [ "${BENCH_DIRECT:-1}" != 0 ]; then
			d1=$(run_train 1 "$layers" "$batch" CKPT_TRAIN_CUDA_SNAPSHOT=direct) || exit 1
			dN=$(run_train $((E + 1)) "$layers" "$batch" CKPT_TRAIN_CUDA_SNAPSHOT=direct) || exit 1
			dr+=("$(awk -v a="$d1" -v b="$dN" -v e="$E" 'BEGIN { printf "%.5f", (b - a) / e }')")
		fi
		b1=$(run_train 1 "$layers" "$batch" CKPT_TRAIN_BENCH_NO_CHECKPOINT=1) || exit 1
		bN=$(run_train $((E + 1)) "$layers" "$batch" CKPT_TRAIN_BENCH_NO_CHECKPOINT=1) || exit 1
		ck+=("$(awk -v a="$a1" -v b="$aN" -v e="$E" 'BEGIN { printf "%.5f", (b - a) / e }')")
		no+=("$(awk -v a="$b1" -v b="$bN" -v e="$E" 'BEGIN { printf "%.5f", (b - a) / e }')")
		line="run $r ($layers, batch $batch): ckpt-train ${ck[-1]} s/epoch checkpointed, ${no[-1]} s without"
		[ ${#dr[@]} -eq 0 ] || line+=", ${dr[-1]} s checkpointed direct"
		if [ $have_torch = 1 ]; then
			mkdir -p "$work/pt" && rm -f "$work/pt"/*
			t=$("${T[@]}" "$PY" tests/bench/train_torch_gpu_peer.py "$DATA" "$layers" "$batch" $((E + 1)) "$work/pt" --val-split "$VAL") || exit 1
			tsave+=("$(sed -n 's/^steady_epoch_seconds //p' <<<"$t")")
			rm -f "$work/pt"/*
			t=$("${T[@]}" "$PY" tests/bench/train_torch_gpu_peer.py "$DATA" "$layers" "$batch" $((E + 1)) "$work/pt" --val-split "$VAL" --no-save) || exit 1
			tnosave+=("$(sed -n 's/^steady_epoch_seconds //p' <<<"$t")")
			line+="; pytorch ${tsave[-1]} s with torch.save, ${tnosave[-1]} s without"
		fi
		echo "$line"
		[ -z "$stats" ] || echo "  commits of run $r: $stats"
	done
	c=$(printf '%s\n' "${ck[@]}" | median)
	n=$(printf '%s\n' "${no[@]}" | median)
	echo "RESULT $layers batch $batch: ckpt-train $c s/epoch checkpointing every epoch, $n s without: stall ratio $(awk -v a="$c" -v b="$n" 'BEGIN { printf "%.3f", a / b }') (goal <= 1.02); $(awk -v a="$c" 'BEGIN { printf "%.2f", 1 / a }') epochs/s"
	if [ ${#dr[@]} -gt 0 ]; then
		d=$(printf '%s\n' "${dr[@]}" | median)
		echo "RESULT $layers batch $batch: ckpt-train with CKPT_TRAIN_CUDA_SNAPSHOT=direct (no device-side shadow) $d s/epoch: stall ratio $(awk -v a="$d" -v b="$n" 'BEGIN { printf "%.3f", a / b }')"
	fi
	if [ $have_torch = 1 ]; then
		s=$(printf '%s\n' "${tsave[@]}" | median)
		u=$(printf '%s\n' "${tnosave[@]}" | median)
		echo "RESULT $layers batch $batch: pytorch $("$PY" -c 'import torch; print(torch.__version__)') $s s/epoch with torch.save every epoch, $u s without (ratio $(awk -v a="$s" -v b="$u" 'BEGIN { printf "%.3f", a / b }')); ckpt-train epochs/s / pytorch epochs/s: $(awk -v a="$s" -v b="$c" 'BEGIN { printf "%.2f", a / b }')x (goal >= 1)"
	else
		echo "RESULT pytorch: not measured ($([ "$DEVICE" = cpu ] && echo "BENCH_DEVICE=cpu" || echo "$PY has no torch with CUDA"))"
	fi
done
