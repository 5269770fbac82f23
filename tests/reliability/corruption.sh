#!/usr/bin/env bash
# tests/reliability/corruption.sh - damaged stores: clear errors, EIO, never different bytes
#
# usage: corruption.sh [--rounds N] [--seed S]
#
# A store written by ckpt-train (3 epochs) is copied pristine, mounted once, and its whole tree
# copied as the reference. Then, each on a fresh copy of the pristine store:
#   targeted  flip a byte inside the stored bytes of 3 random tensors (found by searching
#             data.mdb for the tensor's bytes): `ckpt verify` fails naming each of them, the
#             mount reads EIO for every file holding them and the reference bytes for the rest
#   random    N rounds of 1-4 bit flips anywhere in data.mdb: ckpt verify/info/log and ckptfs
#             never crash (no signal, no sanitizer report), stay one-line clear on error, and
#             a tensor never reads back different bytes without an error, nor a file
#             different metadata (every record carries a CRC-32)
#   files     truncated data.mdb (0, 4096 bytes, 10%, 50%), garbage data.mdb, missing lock.mdb,
#             a newer schema: every command fails with one clear line (or works, for a missing
#             lock.mdb), never with a signal
# Prints "FIGURES trials=.. faults=.. reads=.. mismatches=.. failures=..". Exit 0 if all passed.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../integration/mount_lib.sh"

rounds=10 seed=$(date +%s)
while [ $# -gt 0 ]; do
	case $1 in
	--rounds) rounds=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	*) echo "corruption.sh: unknown argument '$1'" >&2; exit 2 ;;
	esac
done
RANDOM=$seed
require_fuse
# private copies: other people may be relinking build/bin meanwhile
# CKPT_BIN_DIR: test other builds of the programs (e.g. sanitized ones)
BIN=${CKPT_BIN_DIR:-$BIN}
mkdir -p "$TMP/bin" && cp "$BIN/ckpt" "$BIN/ckpt-train" "$BIN/ckptfs" "$TMP/bin/" || fail "copy binaries"
BIN=$TMP/bin
FIX=$TOOLS/store_fixture
[ -x "$FIX" ] || fail "build/tests/tools/store_fixture is missing"

trials=0 faults=0 reads=0 mismatches=0 failures=0 crashes=0 metadata=0
problem() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

pristine=$TMP/pristine
"$BIN/ckpt-train" --store "$pristine" --data synthetic --layers 784,64,10 --val-split 1000 \
	--batch-size 256 --epochs 3 --threads 1 --quiet >"$TMP/train.log" 2>&1 ||
	fail "ckpt-train: $(cat "$TMP/train.log")"
mount_store "$pristine" "$TMP/mnt"
mkdir "$TMP/ref"
cp -r "$TMP/mnt"/epoch-* "$TMP/mnt/run.json" "$TMP/mnt/history.csv" "$TMP/ref/" || fail "copy the reference tree"
unmount_store "$TMP/mnt"
mapfile -t npys < <(cd "$TMP/ref" && find . -name '*.npy' | sed 's|^\./||' | sort)
echo "corruption: seed $seed, ${#npys[@]} tensors in 3 epochs"

fresh_copy() {
	rm -rf "$TMP/damaged"
	cp -r "$pristine" "$TMP/damaged"
}

# run_cmd NAME CMD...: a command on a damaged store: exit status < 128 and no sanitizer report;
# when it fails, stderr is one line naming the store. Sets $cmd_rc.
run_cmd() {
	local name=$1
	shift
	"$@" >"$TMP/cmd.out" 2>"$TMP/cmd.err"
	cmd_rc=$?
	if [ $cmd_rc -ge 128 ] || grep -q "AddressSanitizer\|runtime error\|Segmentation" "$TMP/cmd.err"; then
		crashes=$((crashes + 1))
		problem "$name: crashed (exit $cmd_rc): $(head -c 300 "$TMP/cmd.err")"
	elif [[ $name == *"ckpt verify"* ]] && [ $cmd_rc -ne 0 ]; then
		# verify reports every damaged tensor: one "ckpt: error:" line each
		grep -qv "^ckpt: error: " "$TMP/cmd.err" &&
			problem "$name: stray stderr lines: $(head -c 300 "$TMP/cmd.err")"
	elif [ $cmd_rc -ne 0 ] && [ "$(wc -l <"$TMP/cmd.err")" -ne 1 ]; then
		problem "$name: exit $cmd_rc with not exactly one line on stderr: $(head -c 300 "$TMP/cmd.err")"
	fi
	return 0
}

# try_mount: mount the work copy; 0 if mounted (then unmount with unmount_store), 1 if ckptfs
# refused it with a clear line and no mount
try_mount() {
	local mnt=$TMP/mnt pid
	mkdir -p "$mnt"
	: >"$TMP/ckptfs.err"
	"$BIN/ckptfs" "$TMP/damaged" "$mnt" -f 2>"$TMP/ckptfs.err" &
	pid=$!
	for _ in $(seq 1 100); do
		if is_mounted "$mnt"; then
			PIDS+=("$pid")
			MOUNTS+=("$mnt")
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	{ wait "$pid"; } 2>/dev/null
	local rc=$?
	if [ $rc -ge 128 ] || [ $rc -eq 0 ]; then
		crashes=$((crashes + 1))
		problem "ckptfs on a damaged store: exit $rc without mounting: $(head -c 300 "$TMP/ckptfs.err")"
	fi
	return 1
}

# ---- targeted: damage 3 tensors' bytes
for round in 1 2; do
	trials=$((trials + 1))
	fresh_copy
	damaged=() expect=() stems=()
	for _ in 1 2 3; do
		rel=${npys[$((RANDOM % ${#npys[@]}))]}
		case " ${damaged[*]} " in *" $rel "*) continue ;; esac
		python3 "$HERE/corrupt.py" tensor "$TMP/damaged/data.mdb" "$TMP/ref/$rel" $RANDOM >/dev/null ||
			{ problem "corrupt.py could not find $rel"; continue; }
		faults=$((faults + 1))
		damaged+=("$rel")
		ep=${rel%%/*}
		expect+=("$rel" "$ep/checkpoint.pt")
		[[ $rel == */model/* ]] && expect+=("$ep/model.safetensors" "$ep/model.pt")
	done
	run_cmd "ckpt verify" "$BIN/ckpt" verify "$TMP/damaged"
	[ $cmd_rc -ne 0 ] || problem "ckpt verify passed with ${#damaged[@]} damaged tensors"
	for rel in "${damaged[@]}"; do
		stem=$(basename "$rel" .npy)
		grep -q "${rel%%/*}: bad tensor \(optimizer/\)\?$stem " "$TMP/cmd.err" "$TMP/cmd.out" ||
			problem "ckpt verify does not name ${rel%%/*} $stem: $(cat "$TMP/cmd.err" "$TMP/cmd.out")"
	done
	if try_mount; then
		list=$(IFS=,; echo "${expect[*]}")
		python3 "$HERE/check_tree.py" "$TMP/mnt" "$TMP/ref" --expect-eio "$list" >"$TMP/check.log"
		rc=$?
		r=$(sed -n 's/.*reads=\([0-9]*\).*/\1/p' "$TMP/check.log")
		m=$(sed -n 's/.*mismatches=\([0-9]*\).*/\1/p' "$TMP/check.log")
		reads=$((reads + ${r:-0})) mismatches=$((mismatches + ${m:-0}))
		[ $rc -eq 0 ] || problem "targeted round $round (${damaged[*]}): $(cat "$TMP/check.log")"
		unmount_store "$TMP/mnt"
	else
		problem "ckptfs refused a store with damaged tensor bytes: $(cat "$TMP/ckptfs.err")"
	fi
	echo "targeted $round: damaged ${damaged[*]}: verify named them; mount: $(head -n 1 "$TMP/check.log")"
done

# ---- random bit flips anywhere
for round in $(seq 1 "$rounds"); do
	trials=$((trials + 1))
	fresh_copy
	n=$((1 + RANDOM % 4))
	python3 "$HERE/corrupt.py" random "$TMP/damaged/data.mdb" $n $RANDOM >"$TMP/offsets" || fail "corrupt.py"
	faults=$((faults + n))
	run_cmd "ckpt verify (flips at $(cat "$TMP/offsets"))" "$BIN/ckpt" verify "$TMP/damaged"
	verify_rc=$cmd_rc
	run_cmd "ckpt info" "$BIN/ckpt" info "$TMP/damaged"
	run_cmd "ckpt log" "$BIN/ckpt" log "$TMP/damaged"
	if try_mount; then
		python3 "$HERE/check_tree.py" "$TMP/mnt" "$TMP/ref" --lenient-metadata >"$TMP/check.log"
		rc=$?
		r=$(sed -n 's/.*reads=\([0-9]*\).*/\1/p' "$TMP/check.log")
		m=$(sed -n 's/.*mismatches=\([0-9]*\).*/\1/p' "$TMP/check.log")
		md=$(sed -n 's/.*metadata=\([0-9]*\).*/\1/p' "$TMP/check.log")
		reads=$((reads + ${r:-0})) mismatches=$((mismatches + ${m:-0})) metadata=$((metadata + ${md:-0}))
		[ $rc -eq 0 ] || problem "random round $round (flips at $(cat "$TMP/offsets")): $(cat "$TMP/check.log")"
		if grep -q "eio=[1-9]" "$TMP/check.log" && [ $verify_rc -eq 0 ]; then
			problem "random round $round: the mount read EIO but ckpt verify passed"
		fi
		if is_mounted "$TMP/mnt"; then
			fusermount3 -u "$TMP/mnt" 2>/dev/null
			wait "${PIDS[-1]}" 2>/dev/null
			prc=$?
			[ $prc -lt 128 ] || { crashes=$((crashes + 1)); problem "ckptfs died with $prc"; }
			unset 'PIDS[-1]' 'MOUNTS[-1]'
		fi
		echo "random $round: $n flips at $(cat "$TMP/offsets"): verify exit $verify_rc; mount: $(head -n 1 "$TMP/check.log")"
		# every record carries a CRC-32: a file that reads back other metadata without an
		# error is a failure (history.csv rows emptied for a damaged epoch are counted apart)
		[ "${md:-0}" -eq 0 ] || problem "random round $round: metadata changed without an error: $(grep "metadata differs" "$TMP/check.log")"
	else
		echo "random $round: $n flips at $(cat "$TMP/offsets"): verify exit $verify_rc; ckptfs refused: $(cat "$TMP/ckptfs.err")"
	fi
done

# ---- damaged files: every command, one clear line, no signal
damage_file() {
	fresh_copy
	case $1 in
	truncate-*) python3 "$HERE/corrupt.py" truncate "$TMP/damaged/data.mdb" "${1#truncate-}" >/dev/null ;;
	truncate4096) truncate -s 4096 "$TMP/damaged/data.mdb" ;;
	garbage) python3 "$HERE/corrupt.py" garbage "$TMP/damaged/data.mdb" $RANDOM >/dev/null ;;
	no-lock) rm -f "$TMP/damaged/lock.mdb" ;;
	no-data) rm -f "$TMP/damaged/data.mdb" ;;
	schema) "$FIX" schema "$TMP/damaged" 2 >/dev/null ;;
	esac
}
for kind in truncate-0 truncate4096 truncate-0.1 truncate-0.5 garbage no-lock no-data schema; do
	trials=$((trials + 1)) faults=$((faults + 1))
	damage_file $kind || { problem "$kind: could not damage the store"; continue; }
	summary=""
	for cmd in info log verify "show latest" "ls epoch-0001" "cat epoch-0001/model.pt"; do
		if [ "${cmd#* }" != "$cmd" ]; then # ckpt COMMAND STORE ARG
			run_cmd "$kind: ckpt $cmd" "$BIN/ckpt" ${cmd%% *} "$TMP/damaged" ${cmd#* }
		else
			run_cmd "$kind: ckpt $cmd" "$BIN/ckpt" $cmd "$TMP/damaged"
		fi
		summary+=" ${cmd%% *}=$cmd_rc"
		if [ $kind = no-lock ]; then
			[ $cmd_rc -eq 0 ] || problem "no lock.mdb: ckpt $cmd failed: $(cat "$TMP/cmd.err")"
		elif [ $cmd_rc -eq 0 ]; then
			problem "$kind: ckpt $cmd succeeded on a damaged store"
		elif ! grep -q "$TMP/damaged\|newer\|schema" "$TMP/cmd.err"; then
			problem "$kind: ckpt $cmd error does not name the store: $(cat "$TMP/cmd.err")"
		fi
	done
	run_cmd "$kind: ckpt-train --resume" "$BIN/ckpt-train" --store "$TMP/damaged" --resume --epochs 4 --quiet
	summary+=" train-resume=$cmd_rc"
	[ $kind = no-lock ] || [ $cmd_rc -ne 0 ] || problem "$kind: ckpt-train --resume succeeded"
	if try_mount; then
		python3 "$HERE/check_tree.py" "$TMP/mnt" "$TMP/ref" --lenient-metadata >"$TMP/check.log"
		[ $kind != no-lock ] || grep -q "eio=0 errors=0 mismatches=0" "$TMP/check.log" ||
			problem "no lock.mdb: the mount reads wrong: $(cat "$TMP/check.log")"
		unmount_store "$TMP/mnt"
		summary+=" mount=ok"
	else
		summary+=" mount=refused($(head -c 120 "$TMP/ckptfs.err"))"
	fi
	echo "file $kind:$summary"
done

echo "corruption: $trials cases, $faults faults injected, $reads reads checked, $mismatches" \
	"mismatches, $metadata silent metadata changes, $crashes crashes," \
	"$failures failures"
echo "FIGURES trials=$trials faults=$faults reads=$reads mismatches=$mismatches failures=$failures"
[ "$failures" -eq 0 ]
