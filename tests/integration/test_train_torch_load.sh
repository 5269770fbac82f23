#!/usr/bin/env bash
# tests/integration/test_train_torch_load.sh - checkpoints written by ckpt-train load into the
# equivalent PyTorch module and torch.optim optimizer (strict) and training goes on there.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
need_torch
work=$WORK
for opt in sgd adam adamw; do
	"$TRAIN" --store "$work/$opt" --data synthetic --layers 20,12,8,4 --val-split 2000 \
		--optimizer $opt --lr-schedule step:1:0.5 --epochs 2 --threads 1 --quiet --no-sync ||
		fail "training $opt"
	"$CKPT" export "$work/$opt" latest --format checkpoint -o "$work/$opt.pt" ||
		fail "ckpt export $opt"
	"$PY" tests/integration/train_torch_load.py "$work/$opt.pt" 20,12,8,4 $opt 2 || fail "torch load $opt"
done
