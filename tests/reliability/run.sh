#!/usr/bin/env bash
# tests/reliability/run.sh - the long reliability suite (make test-reliability)
#
# usage: tests/reliability/run.sh [--quick]
# env:   RELIABILITY_SEED (default: the time), CRASH_TRIALS (200), CORRUPT_ROUNDS (100),
#        CKPT_BIN_DIR (default build/bin: the programs under test)
#
# Runs crash_trials.sh (200 SIGKILL trials), readers.sh twice (retention; then a store that
# outgrows its 64 MiB initial map while 4 readers read), corruption.sh (100 rounds of random
# flips plus targeted and file damage) and fulldisk.sh (5 disk sizes), then prints each
# suite's figures and the totals: trials, faults injected, reads checked, mismatches.
# --quick runs the short versions (as make test does). Exit 0 when every suite passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
seed=${RELIABILITY_SEED:-$(date +%s)}
trials=${CRASH_TRIALS:-200} rounds=${CORRUPT_ROUNDS:-100} readers_epochs=60 growth_epochs=14 disks=5
if [ "${1:-}" = --quick ]; then
	trials=10 rounds=6 readers_epochs=30 growth_epochs=0 disks=2
fi
logdir=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-reliability.XXXXXX")
trap 'rm -rf "$logdir"' EXIT
suites=(
	"crash|tests/reliability/crash_trials.sh --trials $trials --seed $seed"
	"readers|tests/reliability/readers.sh --readers 4 --epochs $readers_epochs --keep-last 2 --seed $seed"
	"corruption|tests/reliability/corruption.sh --rounds $rounds --seed $seed"
	"fulldisk|tests/reliability/fulldisk.sh --rounds $disks"
)
[ $growth_epochs -gt 0 ] && suites+=(
	"map-growth|tests/reliability/readers.sh --readers 4 --epochs $growth_epochs --keep-last 0 --layers 784,1024,10 --min-mib 70 --seed $seed")
echo "reliability: seed $seed (rerun with RELIABILITY_SEED=$seed)"
T=0 F=0 R=0 M=0 failed=()
for s in "${suites[@]}"; do
	name=${s%%|*} cmd=${s#*|}
	start=$(date +%s)
	echo "== $name: $cmd"
	bash $cmd 2>&1 | tee "$logdir/$name.log" | grep -v '^trial [0-9]*: ok\|^random [0-9]*:\|^targeted\|^file \|^round '
	rc=${PIPESTATUS[0]}
	line=$(grep '^FIGURES' "$logdir/$name.log" | tail -n 1)
	eval "$(sed -n 's/^FIGURES //p' <<<"$line" | tr ' ' '\n' | sed 's/^/f_/')"
	T=$((T + ${f_trials:-0})) F=$((F + ${f_faults:-0})) R=$((R + ${f_reads:-0})) M=$((M + ${f_mismatches:-0}))
	[ $rc -eq 0 ] || failed+=("$name (exit $rc)")
	echo "-- $name: exit $rc in $(($(date +%s) - start)) s"
	unset f_trials f_faults f_reads f_mismatches f_failures
done
echo
echo "reliability totals: trials $T, faults injected $F, reads checked $R, mismatches $M"
for f in "${failed[@]+"${failed[@]}"}"; do echo "failed: $f"; done
[ ${#failed[@]} -eq 0 ]
