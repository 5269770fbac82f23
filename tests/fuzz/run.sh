#!/usr/bin/env bash
# tests/fuzz/run.sh - build the libFuzzer harnesses with clang (ASan + UBSan) and run each one
#
# usage: tests/fuzz/run.sh [TARGET...]     (default: every tests/fuzz/fuzz_*.c)
#        tests/fuzz/run.sh --seeds          rewrite tests/fuzz/corpus/ from make_seeds.c
# env:   FUZZ_SECONDS (default 60) per target, FUZZ_JOBS (default 1), CC_FUZZ (default clang)
#
# Module sources are compiled into build/fuzz/obj with -fsanitize=fuzzer-no-link; each harness
# links them into build/fuzz/<target>. Each run starts from the committed seed corpus
# tests/fuzz/corpus/<target>/ and grows build/fuzz/corpus/<target>/; crashes land in
# build/fuzz/crashes/<target>/ (copy one to tests/fuzz/corpus/<target>/ and replay it in
# tests/unit/check_regress.c once fixed). Prints one line per target and exits 1 on any crash.
set -uo pipefail
cd "$(dirname "$0")/../.."
CC_FUZZ=${CC_FUZZ:-clang}
SECONDS_PER=${FUZZ_SECONDS:-60}
OUT=build/fuzz
command -v "$CC_FUZZ" >/dev/null || { echo "fuzz: $CC_FUZZ not found (scripts/deps.sh extra)" >&2; exit 1; }
PKGS="lmdb libxxhash jansson fuse3 openblas zlib"
CFLAGS="-std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Iinclude -I. -g -O1 -fno-omit-frame-pointer \
-fsanitize=address,undefined -fno-sanitize-recover=undefined $(pkg-config --cflags $PKGS)"
LIBS="$(pkg-config --libs $PKGS) -lpthread -lm"
mkdir -p "$OUT/obj"
objs=()
for src in store/*.c fs/*.c train/*.c; do
	case $src in *_main.c) continue ;; esac
	obj=$OUT/obj/${src%.c}.o
	mkdir -p "$(dirname "$obj")"
	if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "$(dirname "$src")" -name '*.h' -newer "$obj")" ]; then
		$CC_FUZZ $CFLAGS -fsanitize=fuzzer-no-link -c "$src" -o "$obj" || { echo "fuzz: cannot compile $src" >&2; exit 1; }
	fi
	objs+=("$obj")
done
if [ "${1:-}" = --seeds ]; then
	$CC_FUZZ $CFLAGS tests/fuzz/make_seeds.c "${objs[@]}" $LIBS -o "$OUT/make_seeds" &&
		"$OUT/make_seeds" tests/fuzz/corpus
	exit
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=($(ls tests/fuzz/fuzz_*.c | xargs -n1 basename | sed 's/\.c$//'))
crashed=0
for t in "${targets[@]}"; do
	$CC_FUZZ $CFLAGS -fsanitize=fuzzer "tests/fuzz/$t.c" "${objs[@]}" $LIBS -o "$OUT/$t" ||
		{ echo "fuzz: cannot build $t" >&2; exit 1; }
	rm -rf "$OUT/crashes/$t" # inputs of an earlier run: keep them in tests/fuzz/corpus/ if they matter
	mkdir -p "$OUT/corpus/$t" "$OUT/crashes/$t"
	log=$OUT/$t.log
	jobs=()
	[ "${FUZZ_JOBS:-1}" -gt 1 ] && jobs=(-fork="$FUZZ_JOBS")
	ASAN_OPTIONS=detect_leaks=1 "$OUT/$t" -max_total_time="$SECONDS_PER" "${jobs[@]}" -artifact_prefix="$OUT/crashes/$t/" -print_final_stats=1 \
		"$OUT/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	if [ $rc -ne 0 ] || [ -n "$(ls -A "$OUT/crashes/$t")" ]; then
		crashed=$((crashed + 1))
		echo "fuzz $t: CRASH (exit $rc) after ${runs:-?} runs; inputs in $OUT/crashes/$t/; log $log"
		grep -m 3 "ERROR\|SUMMARY\|Assertion" "$log"
	else
		echo "fuzz $t: ${SECONDS_PER}s, ${runs:-?} runs, $cov, corpus $(ls "$OUT/corpus/$t" | wc -l) inputs, no crash"
	fi
done
[ $crashed -eq 0 ]
