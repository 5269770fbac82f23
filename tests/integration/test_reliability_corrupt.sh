#!/usr/bin/env bash
# tests/integration/test_reliability_corrupt.sh - damaged stores (short version of
# tests/reliability/corruption.sh): damaged tensors named by ckpt verify and EIO through the
# mount, 6 rounds of random bit flips, truncated/garbage data.mdb, no lock.mdb, newer schema.
set -uo pipefail
cd "$(dirname "$0")/../.."
seed=${CORRUPT_SEED:-$(date +%s)}
exec bash tests/reliability/corruption.sh --rounds 6 --seed "$seed"
