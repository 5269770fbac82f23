#!/usr/bin/env bash
# scripts/demo.sh - the main job: train an MLP on Fashion-MNIST with a checkpoint per epoch,
# show the store's log, then mount it and show what a user sees.
# Leaves the store in ./demo-store; the mount stays at ./demo-mnt when run on a terminal.
set -euo pipefail
cd "$(dirname "$0")/.."

store=demo-store
mnt=demo-mnt
epochs=${DEMO_EPOCHS:-3}
bin=build/bin

if mountpoint -q "$mnt" 2>/dev/null; then
	fusermount3 -u "$mnt"
fi
rm -rf "$store"

echo "\$ ckpt-train --store $store --data fashion-mnist --layers 784,256,128,10 --epochs $epochs --optimizer sgd --lr 0.1 --momentum 0.9"
"$bin/ckpt-train" --store "$store" --data fashion-mnist --layers 784,256,128,10 \
	--epochs "$epochs" --optimizer sgd --lr 0.1 --momentum 0.9
echo
echo "\$ ckpt log $store"
"$bin/ckpt" log "$store"
echo
echo "\$ ckpt info $store"
"$bin/ckpt" info "$store"
echo

mkdir -p "$mnt"
echo "\$ ckptfs $store $mnt"
"$bin/ckptfs" "$store" "$mnt"
cleanup() { fusermount3 -u "$mnt" 2>/dev/null || true; }
if [ ! -t 1 ]; then trap cleanup EXIT; fi

echo "\$ ls -l $mnt"
ls -l "$mnt"
echo
echo "\$ readlink $mnt/best"
readlink "$mnt/best"
echo
echo "\$ ls -l $mnt/best/"
ls -l "$mnt/best/"
echo
echo "\$ ls -l $mnt/best/model/"
ls -l "$mnt/best/model/"
echo
echo "\$ cat $mnt/best/metrics.json"
cat "$mnt/best/metrics.json"
echo
if command -v /usr/bin/python3 >/dev/null && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	echo "\$ python3 -c 'import torch; sd = torch.load(\"$mnt/best/model.pt\"); ...'"
	/usr/bin/python3 - "$mnt/best/model.pt" <<'PY'
import sys, torch
sd = torch.load(sys.argv[1])
for name, t in sd.items():
    print(f"{name:12s} {str(tuple(t.shape)):12s} {t.dtype} {t.device}")
PY
	echo
fi
if [ -t 1 ]; then
	echo "The store is mounted at $mnt. Unmount with: fusermount3 -u $mnt"
else
	echo "Not on a terminal: unmounting $mnt."
fi
