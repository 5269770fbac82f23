#!/usr/bin/env bash
# tests/integration/test_pt_libckpt.sh - a Python producer writes a torch model and its AdamW
# state through libckpt (ctypes): checkpoint.pt (ckpt export) gives back the optimizer's
# state_dict key by key, for groups in the model's order and for a decay/no-decay split that
# names its parameters ("param_names"), and one more step from it equals one more step of the
# original (tests/integration/pt_libckpt_groups.py). Exit 0 pass, 77 skip.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need_built "$CKPT" "$ROOT/build/lib/libckpt.so"
need_torch
"$PY" "$ROOT/tests/integration/pt_libckpt_groups.py" "$ROOT/build/lib/libckpt.so" "$CKPT" "$WORK"
