#!/usr/bin/env bash
# tests/integration/test_train_torch_load.sh - checkpoints written by ckpt-train load into the
# equivalent PyTorch module and torch.optim optimizer (strict) and training goes on there.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${TORCH_PYTHON:-/usr/bin/python3}
if ! "$PY" -c 'import torch' 2>/dev/null; then
	echo "SKIP: torch not importable by $PY"
	exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
for opt in sgd adam adamw; do
	build/bin/ckpt-train --store "$work/$opt" --data synthetic --layers 20,12,8,4 --val-split 2000 \
		--optimizer $opt --lr-schedule step:1:0.5 --epochs 2 --threads 1 --quiet --no-sync ||
		fail "training $opt"
	build/bin/ckpt export "$work/$opt" latest --format checkpoint -o "$work/$opt.pt" ||
		fail "ckpt export $opt"
	"$PY" tests/integration/train_torch_load.py "$work/$opt.pt" 20,12,8,4 $opt 2 || fail "torch load $opt"
done
