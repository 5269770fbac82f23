#!/usr/bin/env bash
# scripts/bench.sh - run every benchmark (tests/bench/bench_*.sh); each prints its own figures
# and its peer's, measured side by side in the same run. Not part of `make test`.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for b in tests/bench/bench_*.sh; do
	[ -e "$b" ] || continue
	echo "== $(basename "$b" .sh)"
	bash "$b" || { echo "benchmark $(basename "$b") failed" >&2; status=1; }
done
exit $status
