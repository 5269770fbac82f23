#!/usr/bin/env bash
# tests/integration/test_train_torch.sh - the engine's SGD (momentum, dampening, nesterov,
# weight decay), Adam and AdamW steps agree with Debian's torch.optim within 1e-5.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
TOOL=$TOOLS/train_step
[ -x "$TOOL" ] || fail "missing $TOOL (make test builds it)"
need_torch
"$PY" tests/integration/train_torch_step.py "$TOOL" "$WORK"
