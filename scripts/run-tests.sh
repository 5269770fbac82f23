#!/usr/bin/env bash
# scripts/run-tests.sh - run the Check unit suites (sanitized) and the integration scripts.
# Usage: run-tests.sh [--unit-only|--integration-only] [UNIT_BINARY...]
# Each Check test counts once; each integration script counts once (exit 0 pass, 77 skip).
# Ends with a line per skipped test, by name and reason ("skipped: NAME (REASON)"; also the
# skipped parts of passing scripts), then "tests: N passed, N failed, N skipped", and exits
# non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=all
case "${1:-}" in
--unit-only | --integration-only)
	mode=${1#--}
	shift
	;;
esac

passed=0 failed=0 skipped=0
failures=() skips=()
# "SKIP: name: reason" (Check tests) or "SKIP: reason" (scripts) lines of a log, as "name (reason)"
note_skips() { # name log
	local line
	while IFS= read -r line; do
		line=${line#SKIP: }
		if [[ $line =~ ^(test_[A-Za-z0-9_]+):\ (.*)$ ]]; then
			skips+=("${BASH_REMATCH[1]} (${BASH_REMATCH[2]})")
		else
			skips+=("$1 ($line)")
		fi
	done < <(grep '^SKIP: ' "$2")
}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-120}

if [ "$mode" != integration-only ]; then
	for bin in "$@"; do
		name=$(basename "$bin")
		log=$(mktemp)
		"$bin" >"$log" 2>&1
		rc=$?
		cat "$log"
		line=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$log" | tail -n 1)
		if [ -n "$line" ]; then
			checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
			fails=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
			errs=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
			nskip=$(grep -c '^SKIP: ' "$log")
			note_skips "$name" "$log"
			bad=$((fails + errs))
			passed=$((passed + checks - bad - nskip))
			skipped=$((skipped + nskip))
			failed=$((failed + bad))
			[ "$bad" -gt 0 ] && failures+=("$name")
		fi
		if [ -z "$line" ] || { [ $rc -ne 0 ] && [ "${bad:-0}" -eq 0 ]; }; then
			failed=$((failed + 1))
			failures+=("$name (exit $rc)")
		fi
		rm -f "$log"
	done
fi

if [ "$mode" != unit-only ]; then
	for t in tests/integration/test_*.sh; do
		[ -e "$t" ] || continue
		name=$(basename "$t" .sh)
		echo "== $name"
		start=$(date +%s)
		log=$(mktemp)
		bash "$t" >"$log" 2>&1 # a file, not a pipe: a straggler cannot hold the run up
		rc=$?
		cat "$log"
		[ $rc -eq 77 ] && ! grep -q '^SKIP: ' "$log" && echo "SKIP: no reason given" >>"$log"
		[ $rc -eq 0 ] || [ $rc -eq 77 ] && note_skips "$name" "$log"
		rm -f "$log"
		secs=$(($(date +%s) - start))
		case $rc in
		0)
			passed=$((passed + 1))
			echo "PASS: $name (${secs}s)"
			;;
		77)
			skipped=$((skipped + 1))
			echo "SKIP: $name"
			;;
		*)
			failed=$((failed + 1))
			failures+=("$name")
			echo "FAIL: $name (exit $rc, ${secs}s)"
			;;
		esac
	done
fi

if [ "$mode" != unit-only ] && [ ! -e build/lib/ckpt-train-cuda.so ]; then
	skips+=("the CUDA plug-in build (no nvcc found, or make CUDA=0; make CUDA=1 insists)")
fi
echo
for f in "${skips[@]+"${skips[@]}"}"; do echo "skipped: $f"; done
for f in "${failures[@]+"${failures[@]}"}"; do echo "failed: $f"; done
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
