#!/usr/bin/env bash
# tests/integration/test_pt_train.sh - checkpoints written by ckpt-train, used from PyTorch:
# model.pt loads with load_state_dict(strict=True) into the equivalent nn.Module (fc1, relu,
# fc2, ...) whose validation accuracy equals the engine's val_acc, and one more PyTorch step
# from checkpoint.pt (SGD with momentum, Adam) equals one more step of ckpt-train --resume on
# the same batch within 1e-5. The data set is a small generated CSV with one batch per epoch,
# so "one more epoch" is exactly one optimizer step. Exit 0 pass, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$ROOT
ckpt=$CKPT
train=$TRAIN
need_built "$ckpt" "$train"
need_torch
py=$PY
tmp=$WORK

# 400 rows, 16 features (0..255), 4 classes around random centres
"$py" - "$tmp/train.csv" <<'PY'
import sys
import numpy as np
rng = np.random.default_rng(1)
n, f, k = 400, 16, 4
centres = rng.integers(0, 256, size=(k, f))
y = rng.integers(0, k, size=n)
x = np.clip(centres[y] + rng.normal(0, 60, size=(n, f)), 0, 255).astype(int)
with open(sys.argv[1], 'w') as out:
    for i in range(n):
        out.write(','.join([str(y[i])] + [str(v) for v in x[i]]) + '\n')
PY
layers=16,12,8,4
val=100
args=()
for opt in sgd adam; do
	s=$tmp/$opt
	lr=0.1
	[ $opt = adam ] && lr=0.02
	common=(--store "$s" --data "$tmp/train.csv" --layers $layers --val-split $val
		--batch-size 300 --optimizer $opt --lr $lr --seed 3 --threads 1 --quiet)
	"$train" "${common[@]}" --epochs 20
	"$ckpt" export "$s" 20 --format checkpoint -o "$tmp/$opt-ck.pt"
	"$ckpt" export "$s" 20 --format pt -o "$tmp/$opt-m.pt"
	"$train" "${common[@]}" --epochs 21 --resume
	"$ckpt" export "$s" 21 --format pt -o "$tmp/$opt-m21.pt"
	args+=(val-acc "$tmp/$opt-m.pt" "$tmp/$opt-ck.pt" "$tmp/train.csv" $val $layers ";"
		resume-step "$tmp/$opt-ck.pt" "$tmp/$opt-m21.pt" "$tmp/train.csv" $val $layers ";")
done
# the real data set, when installed: the best epoch's model on the validation split
fmnist=/usr/share/datasets/fashion-mnist
if [ -d "$fmnist" ]; then
	s=$tmp/fmnist
	"$train" --store "$s" --layers 784,32,10 --epochs 2 --quiet --threads 2
	"$ckpt" export "$s" best --format pt -o "$tmp/fm.pt"
	"$ckpt" export "$s" best --format checkpoint -o "$tmp/fm-ck.pt"
	args+=(val-acc "$tmp/fm.pt" "$tmp/fm-ck.pt" "$fmnist" 5000 784,32,10 ";")
else
	echo "note: $fmnist not installed, Fashion-MNIST accuracy check left out"
fi
unset 'args[${#args[@]}-1]'
"$py" "$root/tests/integration/pt_check.py" "${args[@]}"
