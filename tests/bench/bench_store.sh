#!/usr/bin/env bash
# tests/bench/bench_store.sh - checkpoint commit into libckpt vs torch.save + fsync + rename.
#
# Commits a checkpoint of CKPT_BENCH_MIB (default 512) MiB in 16 float32 tensors into a store,
# and saves the same amount with Debian's python3-torch, alternating runs (CKPT_BENCH_RUNS,
# default 3) on the same disk (a temp dir under build/). Prints each run, both median
# throughputs and their ratio; then snapshot read throughput vs memcpy of the same bytes.
set -euo pipefail
cd "$(dirname "$0")/../.."
MIB=${CKPT_BENCH_MIB:-512}
RUNS=${CKPT_BENCH_RUNS:-3}
NT=16
make --no-print-directory -s build/tests/tools/bench_store >/dev/null
TOOL=build/tests/tools/bench_store
mkdir -p build
work=$(mktemp -d build/bench-store.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Debian's python3-torch lives in the system python, which may not be first on PATH
have_torch=0 PY=
for py in ${PYTHON:-} python3 /usr/bin/python3; do
	if "$py" -c 'import torch' 2>/dev/null; then
		have_torch=1 PY=$py
		break
	fi
done

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

ours=() peer=()
echo "checkpoint: $MIB MiB in $NT float32 tensors, $RUNS alternating runs, disk of $(df -P build | awk 'NR==2{print $1}')"
for run in $(seq 1 "$RUNS"); do
	line=$($TOOL commit "$work/store" "$MIB" "$NT" "$run")
	s=$(awk '{print $2}' <<<"$line")
	ours+=("$s")
	printf 'run %d  libckpt commit      %8.3f s  %8.1f MiB/s\n' "$run" "$s" "$(awk -v m="$MIB" -v s="$s" 'BEGIN{print m/s}')"
	if [ $have_torch -eq 1 ]; then
		line=$("$PY" tests/bench/bench_store_peer.py "$work" "$MIB" "$NT" "$run")
		s=$(awk '{print $2}' <<<"$line")
		peer+=("$s")
		printf 'run %d  torch.save+fsync    %8.3f s  %8.1f MiB/s\n' "$run" "$s" "$(awk -v m="$MIB" -v s="$s" 'BEGIN{print m/s}')"
		rm -f "$work/peer.pt"
	fi
done
o=$(printf '%s\n' "${ours[@]}" | median)
printf 'libckpt commit:        median %.3f s = %.1f MiB/s\n' "$o" "$(awk -v m="$MIB" -v s="$o" 'BEGIN{print m/s}')"
if [ $have_torch -eq 1 ]; then
	p=$(printf '%s\n' "${peer[@]}" | median)
	printf 'torch.save+fsync+rename: median %.3f s = %.1f MiB/s\n' "$p" "$(awk -v m="$MIB" -v s="$p" 'BEGIN{print m/s}')"
	printf 'ratio (libckpt / torch.save throughput): %.2f\n' "$(awk -v o="$o" -v p="$p" 'BEGIN{print p/o}')"
else
	echo "torch.save peer: skipped (python3 torch not installed)"
fi
line=$($TOOL read "$work/store")
read -r _ r1 _ r2 _ m _ b <<<"$line"
printf 'snapshot read (first):  %.1f MiB/s\n' "$(awk -v b="$b" -v s="$r1" 'BEGIN{print b/1048576/s}')"
printf 'snapshot read (again):  %.1f MiB/s\n' "$(awk -v b="$b" -v s="$r2" 'BEGIN{print b/1048576/s}')"
printf 'memcpy of same bytes:   %.1f MiB/s\n' "$(awk -v b="$b" -v s="$m" 'BEGIN{print b/1048576/s}')"
printf 'read / memcpy ratio:    %.2f\n' "$(awk -v a="$r2" -v m="$m" 'BEGIN{print m/a}')"
