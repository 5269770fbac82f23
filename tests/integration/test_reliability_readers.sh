#!/usr/bin/env bash
# tests/integration/test_reliability_readers.sh - 3 readers check every file they read over a
# mount while ckpt-train commits 30 epochs with --keep-last 2 (short version of
# tests/reliability/readers.sh).
set -uo pipefail
cd "$(dirname "$0")/../.."
exec bash tests/reliability/readers.sh --readers 3 --epochs 30 --keep-last 2 --seed "${READERS_SEED:-$(date +%s)}"
