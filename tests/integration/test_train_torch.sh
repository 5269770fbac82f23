#!/usr/bin/env bash
# tests/integration/test_train_torch.sh - the engine's SGD (momentum, dampening, nesterov,
# weight decay), Adam and AdamW steps agree with Debian's torch.optim within 1e-5.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${TORCH_PYTHON:-/usr/bin/python3}
TOOL=build/tests/tools/train_step
[ -x "$TOOL" ] || { echo "missing $TOOL (make test builds it)"; exit 1; }
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
	echo "SKIP: torch/numpy not importable by $PY"
	exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" tests/integration/train_torch_step.py "$TOOL" "$work"
