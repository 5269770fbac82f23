#!/usr/bin/env bash
# tests/reliability/crash_trials.sh - SIGKILL ckpt-train at random moments, check the store
#
# usage: crash_trials.sh [--trials N] [--seed S] [--epochs E] [--kills K] [--no-mount]
#
# Each trial trains a fresh run of E epochs on synthetic data and kills it up to K times, each
# time at a random moment: either after a random delay (anywhere: data loading, training,
# commit) or, through tests/reliability/killshim.c (LD_PRELOAD), right before or after the Nth
# write/sync of data.mdb/lock.mdb, which puts the kill inside a commit. After every kill:
#   - `ckpt verify` passes and `ckpt info` opens the store,
#   - `ckpt log` lists exactly epochs 1..L, L the last epoch printed or one more (a commit
#     that landed before its line was printed), each checkpoint with all its tensors,
#   - the mount (ckptfs) lists the same epochs, `latest` points at L, every model dir is whole,
#   - the next run (--resume) goes on from L.
# Finally --resume reaches epoch E and the last checkpoint equals, CRC for CRC and byte for
# byte (model.safetensors), that of a run never interrupted.
# Prints one line per trial and "FIGURES trials=.. faults=.. reads=.. mismatches=.. failures=..".
# Exit 0 when every trial passed.
set -uo pipefail
. "$(dirname "$0")/../integration/mount_lib.sh"

trials=10 seed=$(date +%s) epochs=5 max_kills=3 use_mount=1
while [ $# -gt 0 ]; do
	case $1 in
	--trials) trials=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--epochs) epochs=$2; shift 2 ;;
	--kills) max_kills=$2; shift 2 ;;
	--no-mount) use_mount=0; shift ;;
	*) echo "crash_trials.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
RANDOM=$seed
LAYERS=784,64,10
NTENSORS=8 # 4 parameters + 4 momentum buffers
TRAIN_ARGS=(--data synthetic --layers $LAYERS --val-split 1000 --batch-size 256 --threads 1)

[ -x "$BIN/ckpt-train" ] && [ -x "$BIN/ckpt" ] || fail "build/bin/ckpt-train or ckpt missing (run make)"
# private copies: a rebuild of build/bin during a long run must not fail trials
# CKPT_BIN_DIR: test other builds of the programs (e.g. sanitized ones)
BIN=${CKPT_BIN_DIR:-$BIN}
mkdir -p "$TMP/bin" && cp "$BIN/ckpt" "$BIN/ckpt-train" "$BIN/ckptfs" "$TMP/bin/" || fail "copy binaries"
BIN=$TMP/bin
# without FUSE the mount checks cannot run: a failure in CI (CI=true), as for the mount tests;
# elsewhere they are dropped, and said so (--no-mount drops them on purpose)
if [ $use_mount = 1 ] && nofuse=$(fuse_unusable); then
	[ "${CI:-}" != true ] || fail "$nofuse: the crash trials' mount checks cannot run (CI=true, so this is a failure; --no-mount drops them)"
	echo "crash_trials: $nofuse: mount checks skipped"
	use_mount=0
fi
SHIM=$TMP/killshim.so
${CC:-cc} -shared -fPIC -O1 -o "$SHIM" "$(dirname "$0")/killshim.c" -ldl ||
	fail "cannot build killshim.so"

# ---- reference: one uninterrupted run, its I/O call count and its wall time
ref=$TMP/ref
t0=$(date +%s%N)
CKPT_IO_COUNT_FILE=$TMP/iocount LD_PRELOAD=$SHIM "$BIN/ckpt-train" --store "$ref" \
	"${TRAIN_ARGS[@]}" --epochs "$epochs" --quiet >"$TMP/ref.log" 2>&1 ||
	fail "reference run: $(tail -n 3 "$TMP/ref.log")"
run_ms=$((($(date +%s%N) - t0) / 1000000))
io_total=$(cat "$TMP/iocount")
[ "$io_total" -gt "$epochs" ] || fail "killshim saw only $io_total store writes"
last_name=$(printf 'epoch-%04d' "$epochs")
"$BIN/ckpt" show "$ref" "$epochs" >"$TMP/ref.show" || fail "ckpt show of the reference"
ref_sum=$("$BIN/ckpt" cat "$ref" "$last_name/model.safetensors" | sha256sum) || fail "ckpt cat ref"
echo "crash_trials: seed $seed, $trials trials, $epochs epochs, reference run ${run_ms} ms," \
	"$io_total store writes"

faults=0 io_faults=0 timed_faults=0 reads=0 mismatches=0 failures=0 in_commit=0
trial_fail() {
	echo "trial $trial: FAIL: $*"
	failures=$((failures + 1))
	return 1
}

# check_store STORE PRINTED: after a kill; sets $latest. PRINTED: last epoch known committed.
check_store() {
	local store=$1 printed=$2 epochs_listed want n mnt e
	latest=0
	if [ ! -e "$store/data.mdb" ]; then
		[ "$printed" -eq 0 ] || { trial_fail "store vanished after epoch $printed"; return 1; }
		return 0
	fi
	if ! "$BIN/ckpt" verify "$store" >"$TMP/verify.log" 2>&1; then
		# killed inside ckpt_store_create: an environment without a store, which the same
		# command replaces (libckpt starts over in an abandoned environment)
		if [ "$printed" -eq 0 ] && grep -q "not a ckpt store" "$TMP/verify.log"; then
			return 0
		fi
		trial_fail "ckpt verify: $(cat "$TMP/verify.log")"
		return 1
	fi
	"$BIN/ckpt" info "$store" >"$TMP/info.log" 2>&1 ||
		{ trial_fail "ckpt info: $(cat "$TMP/info.log")"; return 1; }
	epochs_listed=$("$BIN/ckpt" log "$store" 2>&1 | awk 'NR > 1 { sub(/^epoch-0*/, "", $1); print $1 }' | tr '\n' ' ')
	n=$(wc -w <<<"$epochs_listed")
	want=$(seq -s ' ' 1 "$n" 2>/dev/null)
	[ "$n" -eq 0 ] || [ "$epochs_listed" = "$want " ] ||
		{ trial_fail "ckpt log lists '$epochs_listed', expected 1..$n"; return 1; }
	latest=$n
	[ "$latest" -eq "$printed" ] || [ "$latest" -eq $((printed + 1)) ] ||
		{ trial_fail "store ends at epoch $latest but epoch $printed was the last printed"; return 1; }
	[ "$latest" -gt "$printed" ] && in_commit=$((in_commit + 1))
	grep -q "^tensors: $((n * NTENSORS))\$" "$TMP/info.log" ||
		{ trial_fail "expected $((n * NTENSORS)) tensors: $(grep tensors "$TMP/info.log")"; return 1; }
	if [ $use_mount = 1 ]; then
		mnt=$TMP/mnt
		mount_store "$store" "$mnt"
		local shown
		shown=$(ls "$mnt" | sed -n 's/^epoch-0*//p' | tr '\n' ' ')
		[ "$shown" = "$epochs_listed" ] || { trial_fail "mount shows '$shown', log '$epochs_listed'"; return 1; }
		if [ "$n" -gt 0 ]; then
			[ "$(readlink "$mnt/latest")" = "$(printf 'epoch-%04d' "$latest")" ] ||
				{ trial_fail "latest -> $(readlink "$mnt/latest"), expected epoch $latest"; return 1; }
			for e in $epochs_listed; do
				[ "$(ls "$mnt/$(printf 'epoch-%04d' "$e")/model" | wc -l)" -eq 4 ] ||
					{ trial_fail "epoch $e: model dir is not whole"; return 1; }
			done
			# the newest checkpoint's bytes through the mount equal ckpt cat's
			local f=$mnt/latest/model.safetensors
			if ! cmp -s "$f" <("$BIN/ckpt" cat "$store" "$(printf 'epoch-%04d' "$latest")/model.safetensors"); then
				mismatches=$((mismatches + 1))
				trial_fail "latest/model.safetensors differs between mount and ckpt cat"
				return 1
			fi
			reads=$((reads + 1))
		fi
		unmount_store "$mnt"
	fi
	return 0
}

for trial in $(seq 1 "$trials"); do
	store=$TMP/trial-$trial
	kills=$((1 + RANDOM % max_kills))
	latest=0 ok=1 what=""
	for k in $(seq 1 "$kills"); do
		[ "$latest" -ge "$epochs" ] && break
		env=()
		if [ $((RANDOM % 2)) -eq 0 ]; then
			at=$((1 + RANDOM % io_total))
			after=$((RANDOM % 2))
			env=(CKPT_KILL_AT=$at CKPT_KILL_AFTER=$after LD_PRELOAD=$SHIM)
			mode="io#$at$([ $after = 1 ] && echo + || echo -)"
			delay=
		else
			delay=$((RANDOM % (run_ms + 1)))
			mode="${delay}ms"
		fi
		if [ "$latest" -eq 0 ]; then
			# nothing committed yet (the store may exist, empty): the same command again
			args=(--store "$store" "${TRAIN_ARGS[@]}" --epochs "$epochs")
		else
			args=(--store "$store" --resume --epochs "$epochs")
		fi
		env "${env[@]}" "$BIN/ckpt-train" "${args[@]}" >"$TMP/out" 2>"$TMP/err" &
		pid=$!
		PIDS+=("$pid")
		if [ -n "$delay" ]; then
			sleep "$(printf '0.%03d' "$delay")" 2>/dev/null || sleep "$((delay / 1000))"
			kill -KILL "$pid" 2>/dev/null
		fi
		{ wait "$pid"; } 2>/dev/null
		rc=$?
		unset 'PIDS[${#PIDS[@]}-1]'
		printed=$(sed -n 's|^epoch \([0-9]*\)/.*|\1|p' "$TMP/out" | tail -n 1)
		printed=${printed:-$latest}
		case $rc in
		137) faults=$((faults + 1))
			[ -n "$delay" ] && timed_faults=$((timed_faults + 1)) || io_faults=$((io_faults + 1))
			what+=" kill@$mode->"
			;;
		0) what+=" done($mode)->" ;;
		*)
			trial_fail "ckpt-train ${args[*]} exited $rc: $(cat "$TMP/err")"
			ok=0
			break
			;;
		esac
		check_store "$store" "$printed" || { ok=0; break; }
		what+="$latest"
	done
	[ $ok = 1 ] || continue
	# ---- finish: resume (or start over if nothing was ever committed) up to the last epoch
	if [ "$latest" -eq 0 ]; then
		args=(--store "$store" "${TRAIN_ARGS[@]}" --epochs "$epochs")
	else
		args=(--store "$store" --resume --epochs "$epochs")
	fi
	"$BIN/ckpt-train" "${args[@]}" --quiet >"$TMP/out" 2>"$TMP/err" ||
		{ trial_fail "final ${args[*]}: $(cat "$TMP/err")"; continue; }
	check_store "$store" "$epochs" || continue
	[ "$latest" -eq "$epochs" ] || { trial_fail "resume ended at epoch $latest"; continue; }
	"$BIN/ckpt" show "$store" "$epochs" >"$TMP/show" || { trial_fail "ckpt show"; continue; }
	sum=$("$BIN/ckpt" cat "$store" "$last_name/model.safetensors" | sha256sum)
	reads=$((reads + 1))
	if ! cmp -s "$TMP/show" "$TMP/ref.show" || [ "$sum" != "$ref_sum" ]; then
		mismatches=$((mismatches + 1))
		trial_fail "epoch $epochs after kills and resumes differs from the uninterrupted run"
		diff "$TMP/ref.show" "$TMP/show" | head -n 4
		continue
	fi
	echo "trial $trial: ok:$what -> resumed to $latest, equal to the uninterrupted run"
done
echo "crash_trials: $trials trials, $faults kills ($io_faults inside store I/O, $timed_faults" \
	"timed), $in_commit found a commit newer than the last printed line, $failures failures"
echo "FIGURES trials=$trials faults=$faults reads=$reads mismatches=$mismatches failures=$failures"
[ "$failures" -eq 0 ]
