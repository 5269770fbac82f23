# tests/integration/lib.sh - the preamble the integration tests share (sourced, not run)
#
# Sourcing it changes to the repository root and sets
#   ROOT, BIN, TOOLS      the repository root, build/bin, build/tests/tools
#   CKPT, CKPTFS, TRAIN   the programs under test (CKPT_BIN, CKPTFS_BIN, TRAIN_BIN override them)
#   WORK                  a fresh mktemp -d directory, removed at exit (a test that sets its own
#                         EXIT trap calls lib_cleanup from it)
# and defines
#   fail MSG...           one "FAIL: MSG" line on stderr, exit 1
#   skip MSG...           one "SKIP: MSG" line, exit 77
#   need_built PROG...    skip unless each program is built
#   wait_until S PID CMD...  run CMD every 50 ms until it succeeds, process PID ends (PID ""
#                         for none) or S seconds pass; returns CMD's last status. Timeouts are
#                         generous: the loop ends as soon as CMD holds, and a loaded 2-core CI
#                         machine is slow
#   need_torch            PY: a python3 that imports torch and numpy ($TORCH_PYTHON or $PYTHON
#                         first), else skip
#   fuse_unusable, require_fuse   from fuse_lib.sh: why no mount can be made here; fail (CI=true)
#                         or skip without one
# Mount tests use mount_lib.sh instead (it also unmounts and kills the daemons it started).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
BIN=$ROOT/build/bin
TOOLS=$ROOT/build/tests/tools
CKPT=${CKPT_BIN:-$BIN/ckpt}
CKPTFS=${CKPTFS_BIN:-$BIN/ckptfs}
TRAIN=${TRAIN_BIN:-$BIN/ckpt-train}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-test.XXXXXX") || exit 1

. "$ROOT/tests/integration/fuse_lib.sh"

lib_cleanup() {
	rm -rf "$WORK"
}
trap lib_cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

wait_until() {
	local secs=$1 pid=$2 i
	shift 2
	for ((i = 0; i < secs * 20; i++)); do
		"$@" && return 0
		[ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	"$@"
}

skip() {
	echo "SKIP: $*"
	exit 77
}

need_built() {
	local prog
	for prog in "$@"; do
		[ -x "$prog" ] || skip "$prog not built (run make)"
	done
}

# safetensors_check FILE [--dump DIR] [--quiet]: tests/integration/safetensors_check.py (the
# reference reader's rules, standard-library Python) validates FILE and prints (and dumps) its
# tensors; the reference checker, where there is one ($SAFETENSORS_CHECK, else
# ../shared/tools/safetensors-check beside the checkout), must accept FILE as well.
# A SAFETENSORS_CHECK that is set but not executable is an error, not a silent fallback.
safetensors_check() {
	"${PY:-python3}" "$ROOT/tests/integration/safetensors_check.py" "$@" || return 1
	local ref=${SAFETENSORS_CHECK:-}
	if [ -n "$ref" ]; then
		[ -x "$ref" ] || { echo "SAFETENSORS_CHECK=$ref is not an executable" >&2; return 1; }
	else
		ref=$ROOT/../shared/tools/safetensors-check
		[ -x "$ref" ] || return 0
	fi
	"$ref" "$1" --quiet
}

need_torch() {
	local cand
	for cand in "${TORCH_PYTHON:-}" "${PYTHON:-}" python3 /usr/bin/python3; do
		if [ -n "$cand" ] && "$cand" -c 'import torch, numpy' 2>/dev/null; then
			PY=$cand
			return 0
		fi
	done
	skip "no python3 with torch and numpy"
}
