#!/usr/bin/env bash
# tests/integration/test_reliability_fulldisk.sh - stores on small tmpfs disks fill up: store
# creation and commits fail with "No space left" (also on a disk full to the last block, where
# lock.mdb could not be backed), earlier epochs stay intact and mountable,
# --resume goes on once there is room (short version of tests/reliability/fulldisk.sh; root).
set -uo pipefail
cd "$(dirname "$0")/../.."
exec bash tests/reliability/fulldisk.sh --rounds 2
