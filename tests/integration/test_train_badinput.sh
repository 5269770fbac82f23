#!/usr/bin/env bash
# tests/integration/test_train_badinput.sh - every bad input gives one "ckpt-train: error:"
# line on stderr, the exit status the README names (2 when the command line alone is wrong, 1
# when the data, the store or the machine refuse), and leaves the store it names untouched (or
# never created): hostile numbers, repeated options, options the chosen optimizer would ignore,
# data sets whose parts disagree, resumes that contradict the stored run.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
work=$WORK
syn=(--data synthetic --layers 16,8,4 --val-split 2000 --threads 1 --quiet --no-sync)

run_as=() # a command that runs ckpt-train as another user, for expect_error

# store_state PATH: what must not change at PATH: "absent", a link's target, a file's bytes, or
# a directory's names and the bytes of its files (lock.mdb's change with every open)
store_state() {
	if [ -L "$1" ]; then
		echo "link to $(readlink "$1")"
	elif [ -d "$1" ]; then
		(cd "$1" && ls -A && find . -type f ! -name lock.mdb -exec sha256sum {} + | sort) | sha256sum
	elif [ -e "$1" ]; then
		sha256sum <"$1"
	else
		echo absent
	fi
}

# expect_error RC NEEDLE ARGS...: ckpt-train ARGS exits with RC (2: the command line alone is
# wrong; 1: the data, the store or the machine refuse) and NEEDLE in its single stderr line; the
# --store it names is left as it was (not created, not changed), and no store appears at $work/new
expect_error() {
	local want=$1 needle=$2 a prev="" store=""
	shift 2
	for a in "$@"; do
		[ "$prev" = --store ] && store=$a
		[ "${a#--store=}" = "$a" ] || store=${a#--store=}
		prev=$a
	done
	local before=""
	[ -z "$store" ] || before=$(store_state "$store")
	${run_as[@]+"${run_as[@]}"} "$TRAIN" "$@" >"$work/out" 2>"$work/err"
	local rc=$?
	[ $rc -eq "$want" ] || fail "exit $rc, want $want, for: $* -> $(cat "$work/err")"
	[ "$(wc -l <"$work/err")" -eq 1 ] || fail "stderr is not one line for: $* -> $(cat "$work/err")"
	grep -q '^ckpt-train: error: ' "$work/err" || fail "no error prefix: $(cat "$work/err")"
	grep -qF -- "$needle" "$work/err" || fail "message lacks '$needle': $(cat "$work/err")"
	[ ! -e "$work/new" ] || fail "a store was created by: $*"
	[ -z "$store" ] || [ "$(store_state "$store")" = "$before" ] ||
		fail "the store $store was $([ "$before" = absent ] && echo created || echo changed) by: $*"
}

$TRAIN --help | grep -q -- '--resume' || fail "--help"
$TRAIN --version | grep -q '^ckpt-train ' || fail "--version"

expect_error 2 "--store DIR is required" "${syn[@]}"
expect_error 2 "invalid --lr 0" --store "$work/a" "${syn[@]}" --lr 0
expect_error 2 "invalid --lr" --store "$work/a" "${syn[@]}" --lr -0.1
expect_error 2 "unknown optimizer 'rmsprop'" --store "$work/a" "${syn[@]}" --optimizer rmsprop
# torch's class names (Adam, AdamW, SGD) are names in any case; the store records the lower-case
# one, so a resume that spells it otherwise is the same optimizer
$TRAIN --store "$work/torchname" "${syn[@]}" --epochs 1 --optimizer Adam || fail "--optimizer Adam"
$CKPT info "$work/torchname" | grep -q '^optimizer: adam$' || fail "--optimizer Adam not recorded as adam"
$TRAIN --store "$work/torchname" --resume --epochs 2 --optimizer ADAM --quiet ||
	fail "--optimizer ADAM on a resume of an adam run"
expect_error 1 "optimizer is adam, not adamw" --store "$work/torchname" --resume --optimizer AdamW --epochs 3
$TRAIN --store "$work/torchsgd" "${syn[@]}" --epochs 1 --optimizer SGD --momentum 0.5 || fail "--optimizer SGD"
expect_error 2 "--layers" --store "$work/a" --data synthetic --layers 16,0,4
expect_error 2 "--lr-schedule" --store "$work/a" "${syn[@]}" --lr-schedule linear
expect_error 2 "invalid --layers: 1999 characters, at most 511" --store "$work/a" --data synthetic \
	--layers "$(printf '5,%.0s' $(seq 999))5"
# decimal numbers only, as Python's float() reads them (strtod also takes hexadecimal)
expect_error 2 "invalid --lr '0x10' (expected a finite decimal number)" --store "$work/a" "${syn[@]}" --lr 0x10
expect_error 2 "invalid --betas" --store "$work/a" "${syn[@]}" --optimizer adam --betas 0x1p-1,0.5
expect_error 2 "invalid --lr-schedule" --store "$work/a" "${syn[@]}" --lr-schedule step:1:0x10
expect_error 2 "invalid --lr 1e-400 (the learning rate must be positive)" --store "$work/a" "${syn[@]}" --lr 1e-400
# a positive value below the normal range is a number (it was called not finite)
"$TRAIN" --store "$work/subnormal" "${syn[@]}" --epochs 1 --lr 4.9e-324 2>"$work/err" ||
	fail "--lr 4.9e-324: $(cat "$work/err")"
expect_error 1 "--val-split 20000 leaves no training samples" --store "$work/a" --data synthetic --layers 16,8,4 --val-split 20000
expect_error 1 "nothing to resume" --store "$work/a" --resume
expect_error 1 "cannot open data" --store "$work/a" --data "$work/no-such-dir"
expect_error 1 "device cuda is not supported" --store "$work/a" "${syn[@]}" --device cuda
expect_error 2 "unknown device 'tpu'" --store "$work/a" "${syn[@]}" --device tpu
expect_error 2 "unknown or ambiguous option '--bogus'" --store "$work/a" "${syn[@]}" --bogus
expect_error 2 "option needs a value: '--epochs'" --store "$work/a" "${syn[@]}" --epochs
expect_error 2 "option takes no value: '--quiet'" --store "$work/a" "${syn[@]}" --quiet=yes
# epoch lines that cannot be written (stdout on a full disk, a closed pipe) are an error, not a
# silent exit 0 nor a death by SIGPIPE: one warning when it happens, training goes on, every
# epoch is committed, exit 1 at the end
if [ -w /dev/full ]; then
	"$TRAIN" --store "$work/full" --data synthetic --layers 16,8,4 --val-split 2000 --threads 1 \
		--no-sync --epochs 2 >/dev/full 2>"$work/err"
	rc=$?
	[ $rc -eq 1 ] || fail "stdout on /dev/full: exit $rc, want 1"
	[ "$(wc -l <"$work/err")" -eq 1 ] &&
		grep -q "warning: cannot write to stdout (No space left on device); training goes on" "$work/err" ||
		fail "stdout on /dev/full: $(cat "$work/err")"
	$CKPT info "$work/full" | grep -q '^checkpoints: 2$' || fail "stdout on /dev/full: epochs not saved"
	for opt in --help --version; do
		"$TRAIN" $opt >/dev/full 2>"$work/err" && fail "$opt >/dev/full: exit 0"
		grep -q "cannot write the ${opt#--} to stdout" "$work/err" || fail "$opt >/dev/full: $(cat "$work/err")"
	done
fi
# a reader that goes away after the first line (head -1): the other epochs are still trained
# and committed (a commit is held open so that the pipe is closed before the second line)
CKPT_TRAIN_TEST_PERSIST_DELAY_MS=300 "$TRAIN" --store "$work/pipe" --data synthetic \
	--layers 16,8,4 --val-split 2000 --threads 1 --no-sync --epochs 4 2>"$work/err" | head -1 >"$work/out"
rcs=("${PIPESTATUS[@]}")
[ "${rcs[0]}" -eq 1 ] || fail "stdout pipe closed: exit ${rcs[0]}, want 1: $(cat "$work/err")"
grep -q '^epoch 1/4 ' "$work/out" || fail "stdout pipe closed: first line: $(cat "$work/out")"
[ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "warning: cannot write to stdout (Broken pipe)" "$work/err" ||
	fail "stdout pipe closed: $(cat "$work/err")"
$CKPT info "$work/pipe" | grep -q '^checkpoints: 4$' || fail "stdout pipe closed: epochs not saved"
# closed standard streams: the store opened next must not become stdout or stderr (epoch lines
# and warnings were written into lock.mdb or data.mdb); a closed stdout is an unwritable one
loud=(--data synthetic --layers 16,8,4 --val-split 2000 --threads 1 --no-sync --epochs 2)
"$TRAIN" --store "$work/closed1" "${loud[@]}" >&- 2>"$work/err"
rc=$?
[ $rc -eq 1 ] && grep -q "warning: cannot write to stdout (Bad file descriptor)" "$work/err" ||
	fail "stdout closed: exit $rc: $(cat "$work/err")"
"$TRAIN" --store "$work/closed3" "${loud[@]}" <&- >&- 2>&-
rc=$?
[ $rc -eq 1 ] || fail "stdin, stdout and stderr closed: exit $rc, want 1"
"$TRAIN" --store "$work/closed2" "${loud[@]}" 2>&- | true
for s in closed1 closed2 closed3; do
	grep -qa "epoch 1/\|ckpt-train" "$work/$s/data.mdb" "$work/$s/lock.mdb" &&
		fail "$s: ckpt-train wrote its output into the store"
	$CKPT verify "$work/$s" >/dev/null 2>&1 && $CKPT info "$work/$s" | grep -q '^checkpoints: 2$' ||
		fail "$s: $($CKPT info "$work/$s" 2>&1)"
done
# --resume takes one word; a second is an error, not ignored
expect_error 2 "unexpected argument 'extra'" --store "$work/pipe" --resume latest extra
[ -e "$work/a" ] && fail "a store was created by bad input"
# a --store whose data.mdb is no LMDB file is refused, new run or resume, and the directory
# stays as it was (no lock.mdb created by the look at it)
mkdir "$work/garbage"
printf garbage >"$work/garbage/data.mdb"
expect_error 1 "data.mdb is not an LMDB file" --store "$work/garbage" "${syn[@]}" --epochs 1
expect_error 1 "data.mdb is not an LMDB file" --store "$work/garbage" --resume
[ "$(ls -A "$work/garbage")" = data.mdb ] || fail "files left in a refused store: $(ls -A "$work/garbage")"
[ "$(cat "$work/garbage/data.mdb")" = garbage ] || fail "the refused data.mdb changed"

# layer sizes that don't match the data (IDX directory with 2x3 images)
mkdir "$work/idx"
python3 - "$work/idx" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
def w(name, data):
    with gzip.open("%s/%s.gz" % (d, name), "wb") as f:
        f.write(data)
w("train-images-idx3-ubyte", struct.pack(">IIII", 0x803, 4, 2, 3) + bytes(range(24)))
w("train-labels-idx1-ubyte", struct.pack(">II", 0x801, 4) + bytes([0, 1, 2, 3]))
w("t10k-images-idx3-ubyte", struct.pack(">IIII", 0x803, 2, 2, 3) + bytes(12))
w("t10k-labels-idx1-ubyte", struct.pack(">II", 0x801, 2) + bytes([1, 3]) + b"x")
PY
expect_error 1 "has 6 features per sample, --layers starts with 16" --store "$work/b" --data "$work/idx" --layers 16,4 --val-split 1
expect_error 1 "trailing bytes" --store "$work/b" --data "$work/idx" --layers 6,4 --val-split 1
expect_error 1 "out of range for 3 classes" --store "$work/b" --data "$work/idx" --layers 6,3 --val-split 1
printf '1,0,0\n1,2,3,4,5,6,7\n' >"$work/bad.csv"
expect_error 1 "bad.csv:1: expected 7 fields" --store "$work/b" --data "$work/bad.csv" --layers 6,4 --val-split 1
printf '1,0,0,0,0,0,0\n9,2,3,4,5,6,7\n' >"$work/bad.csv"
expect_error 1 "bad.csv:2: label 9" --store "$work/b" --data "$work/bad.csv" --layers 6,4 --val-split 1
# a NUL byte ended the row there (2 samples of 3 fields were trained); a value too large for a
# double is out of range, not "not a number"
printf '1,2,3\0,4\n0,1,1\n' >"$work/n_train.csv"
expect_error 1 "$work/n_train.csv:1: contains a NUL byte (at byte 6 of the line)" --store "$work/b" \
	--data "$work/n_train.csv" --layers 2,2 --val-split 0
printf '1,2,3\n0,1,1e400\n' >"$work/o_train.csv"
expect_error 1 "$work/o_train.csv:2: field 3 '1e400' is out of range (too large for a number)" \
	--store "$work/b" --data "$work/o_train.csv" --layers 2,2 --val-split 0
# IDX files of another element type or dimension count say what they are
mkdir "$work/idxf"
python3 - "$work/idxf" <<'PY'
import struct, sys
d = sys.argv[1]
open(d + "/train-images-idx3-ubyte", "wb").write(struct.pack(">IIII", 0xD03, 2, 2, 3) + bytes(48))
open(d + "/train-labels-idx1-ubyte", "wb").write(struct.pack(">II", 0x801, 2) + bytes(2))
PY
expect_error 1 "$work/idxf/train-images-idx3-ubyte is an IDX file of float32 elements with 3 dimensions: only unsigned-byte images (3 dimensions) and labels (1 dimension) are supported" \
	--store "$work/b" --data "$work/idxf" --layers 6,4 --val-split 1
# bytes after the last gzip member are refused, as after a plain file's data (zlib's gzread
# ignored them); concatenated gzip members are one stream, as gzip -d reads them
mkdir "$work/gzj"
python3 - "$work/gzj" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
def w(name, data):
    open("%s/%s" % (d, name), "wb").write(data)
images = struct.pack(">IIII", 0x803, 4, 2, 3) + bytes(range(24))
labels = struct.pack(">II", 0x801, 4) + bytes([0, 1, 2, 3])
w("train-images-idx3-ubyte.gz", gzip.compress(images[:20]) + gzip.compress(images[20:]))
w("train-labels-idx1-ubyte.gz", gzip.compress(labels) + b"JUNK")
w("t10k-images-idx3-ubyte.gz", gzip.compress(struct.pack(">IIII", 0x803, 2, 2, 3) + bytes(12)))
w("t10k-labels-idx1-ubyte", struct.pack(">II", 0x801, 2) + bytes([1, 3]))
PY
expect_error 1 "$work/gzj/train-labels-idx1-ubyte.gz has trailing bytes after its gzip data (not another gzip member)" \
	--store "$work/b" --data "$work/gzj" --layers 6,4 --val-split 1
head -c -4 "$work/gzj/train-labels-idx1-ubyte.gz" >"$work/gzj/l" && mv "$work/gzj/l" "$work/gzj/train-labels-idx1-ubyte.gz"
$TRAIN --store "$work/gzj/s" --data "$work/gzj" --layers 6,4 --val-split 1 --epochs 1 --quiet \
	--no-sync 2>"$work/err" || fail "IDX images in two gzip members: $(cat "$work/err")"
[ -e "$work/b" ] && fail "a store was created by bad data"

# resume with another architecture / optimizer / settings leaves the store as it was
$TRAIN --store "$work/c" "${syn[@]}" --epochs 1 || fail "training"
before=$($CKPT show "$work/c" latest)
expect_error 1 "architecture is --layers 16,8,4" --store "$work/c" --resume --layers 16,4 --epochs 2
expect_error 1 "optimizer is sgd, not adam" --store "$work/c" --resume --optimizer adam --epochs 2
expect_error 1 "--batch-size 64 differs" --store "$work/c" --resume --batch-size 64 --epochs 2
expect_error 1 "already holds a run" --store "$work/c" "${syn[@]}" --epochs 2
expect_error 1 "epoch-0007 is not in store" --store "$work/c" --resume 7 --epochs 9
# an epoch number past 32 or 64 bits is an epoch the store does not hold, not a bad form
expect_error 1 "epoch-4294967296 is not in store" --store "$work/c" --resume 4294967296 --epochs 9
expect_error 1 "epoch 99999999999999999999999 is not in store" --store "$work/c" \
	--resume 99999999999999999999999 --epochs 9
[ "$($CKPT show "$work/c" latest)" = "$before" ] || fail "store changed by refused resume"
$CKPT info "$work/c" | grep -q '^checkpoints: 1$' || fail "checkpoint count changed"

# a non-finite loss stops with a message and writes nothing (the store it created is removed)
expect_error 1 "training loss became" --store "$work/d" "${syn[@]}" --epochs 2 --lr 1e30
[ ! -e "$work/d" ] || fail "a diverged run left a store behind"
# an empty store (a run killed before its first commit): --resume says so
CKPT_TRAIN_TEST_PERSIST_DELAY_MS=10000 $TRAIN --store "$work/e" "${syn[@]}" --epochs 1 --quiet &
kpid=$!
wait_until 20 $kpid test -e "$work/e/data.mdb"
sleep 0.2
kill -KILL $kpid
wait $kpid 2>/dev/null
$CKPT info "$work/e" | grep -q '^checkpoints: 0$' || fail "no empty store to resume"
expect_error 1 "has no checkpoint" --store "$work/e" --resume
# IDX sets whose parts disagree: idx_set DIR TRAIN_SHAPE TEST_SHAPE [LABELS]; a shape is
# COUNTxROWSxCOLS, labels are i % LABELS (default 4)
idx_set() {
	python3 - "$@" <<'PY'
import os, struct, sys
d, train, test = sys.argv[1:4]
k = int(sys.argv[4]) if len(sys.argv) > 4 else 4
os.makedirs(d)
for prefix, shape in (("train", train), ("t10k", test)):
    n, r, c = map(int, shape.split("x"))
    with open("%s/%s-images-idx3-ubyte" % (d, prefix), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, r, c) + bytes(i * 7 % 256 for i in range(n * r * c)))
    with open("%s/%s-labels-idx1-ubyte" % (d, prefix), "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(i % k for i in range(n)))
PY
}
idx_set "$work/ok" 40x2x3 8x2x3
$TRAIN --store "$work/idxrun" --data "$work/ok" --layers 6,4 --val-split 8 --batch-size 16 \
	--epochs 1 --quiet --no-sync || fail "a consistent IDX set"
idx_set "$work/shape" 40x2x3 8x3x2
expect_error 1 "the test and training images differ in shape: $work/shape/t10k-images-idx3-ubyte holds 3 x 2 images, $work/shape/train-images-idx3-ubyte holds 2 x 3" \
	--store "$work/new" --data "$work/shape" --layers 6,4 --val-split 8
expect_error 1 "the test and training images differ in shape" \
	--store "$work/idxrun" --data "$work/shape" --layers 6,4 --val-split 8

# a model with fewer outputs than the data has classes (labels 0..3), or a single class; more
# outputs than classes train, as nn.Linear(..., 10) on labels 0..8 does
expect_error 1 "label 3 of sample 3 is out of range for 3 classes (the last --layers size)" \
	--store "$work/new" --data "$work/ok" --layers 6,3 --val-split 8
$TRAIN --store "$work/wide" --data "$work/ok" --layers 6,5 --val-split 8 --epochs 1 --quiet \
	--no-sync || fail "a model with more outputs than classes was refused"
expect_error 2 "the last size is the number of classes and must be at least 2" \
	--store "$work/new" --data synthetic --layers 16,8,1
printf '0,2,1\n1,3,4\n' >"$work/two_train.csv"
printf '2,1,2\n' >"$work/two_test.csv"
expect_error 1 "$work/two_test.csv:1: label 2 is not an integer in [0, 2) (the last --layers size)" \
	--store "$work/new" --data "$work/two_train.csv" --layers 2,2 --val-split 1
$TRAIN --store "$work/csvrun" --data "$work/two_train.csv" --layers 2,3 --val-split 1 --epochs 1 \
	--batch-size 1 --quiet --no-sync || fail "a class seen only in the test file"

# numbers: white space, signs, trailing text, out of range, not finite
expect_error 2 "invalid --epochs ' 3'" --store "$work/new" "${syn[@]}" --epochs " 3"
expect_error 2 "invalid --epochs '3x'" --store "$work/new" "${syn[@]}" --epochs 3x
# an integer above an option's limit is "too large", however many digits it has (past 2^32 or
# 2^64 it was "invalid ... (expected an integer >= 1)")
expect_error 2 "--epochs 1000001 is too large (at most 1000000)" \
	--store "$work/new" "${syn[@]}" --epochs 1000001
expect_error 2 "--epochs 4294967295 is too large (at most 1000000)" --store "$work/new" "${syn[@]}" --epochs 4294967295
for big in 4294967295 4294967296 18446744073709551616 99999999999999999999999999999; do
	expect_error 2 "--batch-size $big is too large (at most 1048576)" --store "$work/new" "${syn[@]}" --batch-size $big
	expect_error 2 "--threads $big is too large (at most 1024)" --store "$work/new" "${syn[@]}" --threads $big
	expect_error 2 "--epochs $big is too large (at most 1000000)" --store "$work/new" "${syn[@]}" --epochs $big
	expect_error 2 "--layers '16,$big,4': size $big is too large (at most 65536)" --store "$work/new" \
		"${syn[@]}" --layers 16,$big,4
done
for big in 9223372036854775808 18446744073709551616 99999999999999999999999999999; do
	expect_error 2 "--seed $big is too large (at most 9223372036854775807)" --store "$work/new" \
		"${syn[@]}" --seed $big
done
for opt in --val-split --keep-last --keep-top; do
	for big in 4294967296 99999999999999999999999999999; do
		expect_error 2 "$opt $big is too large (at most 4294967295)" --store "$work/new" "${syn[@]}" $opt $big
	done
done
expect_error 2 "--layers '16,65537,4': size 65537 is too large (at most 65536)" --store "$work/new" \
	"${syn[@]}" --layers 16,65537,4
expect_error 2 "invalid --batch-size '0' (expected an integer in 1..1048576)" --store "$work/new" \
	"${syn[@]}" --batch-size 0
expect_error 2 "invalid --epochs '3\x0a4'" --store "$work/new" "${syn[@]}" --epochs $'3\n4'
expect_error 2 "invalid --batch-size '12 '" --store "$work/new" "${syn[@]}" --batch-size "12 "
expect_error 2 "invalid --val-split '-0'" --store "$work/new" --data synthetic --val-split -0
expect_error 2 "invalid --seed ' 5'" --store "$work/new" "${syn[@]}" --seed " 5"
expect_error 2 "invalid --lr ' 0.1'" --store "$work/new" "${syn[@]}" --lr " 0.1"
expect_error 2 "invalid --lr '1e999' (expected a finite decimal number)" --store "$work/new" "${syn[@]}" \
	--lr 1e999
expect_error 2 "invalid --lr 'inf'" --store "$work/new" "${syn[@]}" --lr inf
expect_error 2 "invalid --weight-decay ''" --store "$work/new" "${syn[@]}" --weight-decay ""
expect_error 2 "invalid --betas '0.9, 0.99'" --store "$work/new" "${syn[@]}" --optimizer adam \
	--betas "0.9, 0.99"
expect_error 2 "invalid --betas '0.9,nan'" --store "$work/new" "${syn[@]}" --optimizer adam \
	--betas 0.9,nan
expect_error 2 "invalid --betas '0.9'" --store "$work/new" "${syn[@]}" --optimizer adam --betas 0.9
expect_error 2 "invalid --lr-schedule 'step:-1:0.5'" --store "$work/new" "${syn[@]}" \
	--lr-schedule step:-1:0.5
expect_error 2 "invalid --lr-schedule 'step: 2:0.5'" --store "$work/new" "${syn[@]}" \
	--lr-schedule "step: 2:0.5"
expect_error 2 "--lr-schedule 'step:99999999999:0.5': EVERY 99999999999 is too large (at most 4294967295)" \
	--store "$work/new" "${syn[@]}" --lr-schedule step:99999999999:0.5
expect_error 2 "EVERY 99999999999999999999999 is too large" --store "$work/new" "${syn[@]}" \
	--lr-schedule step:99999999999999999999999:0.5
expect_error 2 "invalid --lr-schedule 'step:2:0.5x'" --store "$work/new" "${syn[@]}" \
	--lr-schedule step:2:0.5x
expect_error 2 "--layers ' 16,8,4': ' 16' is not a layer size" --store "$work/new" "${syn[@]}" \
	--layers " 16,8,4"
expect_error 2 "--layers '16,+8,4': '+8' is not a layer size" --store "$work/new" "${syn[@]}" \
	--layers 16,+8,4
$TRAIN --store "$work/num" "${syn[@]}" --epochs 1 --lr +.05 --lr-schedule step:1:.5 \
	--seed 007 || fail "numbers with a sign, a leading point, leading zeros"

# an option given again: the later value wins, as with argparse (wrapper defaults, then the
# user's own)
$TRAIN --store "$work/later" "${syn[@]}" --layers 16,4 --lr 0.1 --lr 0.05 --epochs 1 --quiet ||
	fail "options given twice were refused"
$CKPT info "$work/later" | grep -q '16,4' || fail "a later --layers does not win"
$CKPT cat "$work/later" latest/metrics.json | grep -q '"lr": 0.05,' || fail "a later --lr does not win"
$TRAIN --store "$work/twice" "${syn[@]}" --lr 0.1 --lr 0.1 --quiet --epochs 3 --epochs 1 ||
	fail "the same value twice; a later --epochs"
$CKPT info "$work/twice" | grep -q '^checkpoints: 1$' || fail "a later --epochs does not win"

# settings that could not act: a batch larger than the training set, retention or a monitor
# without validation samples, --keep-top without --keep-last, dampening without momentum
# a batch larger than the training samples is one partial batch per epoch, the default 128
# on a tiny data set too
printf '0,2,1\n1,3,4\n2,5,6\n0,1,3\n1,4,4\n2,6,5\n' >"$work/tiny_train.csv"
$TRAIN --store "$work/tiny" --data "$work/tiny_train.csv" --layers 2,3 --val-split 2 --epochs 2 \
	--quiet --no-sync 2>"$work/err" || fail "the default batch on 4 training samples: $(cat "$work/err")"
$CKPT info "$work/tiny" | grep -q '^checkpoints: 2$' || fail "a partial batch did not train 2 epochs"
nval=(--data synthetic --layers 16,8,4 --val-split 0 --threads 1 --quiet --no-sync)
expect_error 2 "--monitor val_acc needs validation samples, and --val-split 0 leaves none" \
	--store "$work/new" "${nval[@]}" --monitor val_acc
expect_error 2 "--keep-top needs validation samples" --store "$work/new" "${nval[@]}" --keep-last 2 \
	--keep-top 1
expect_error 2 "--keep-top 2 has no effect without --keep-last N" --store "$work/new" "${syn[@]}" \
	--keep-top 2
expect_error 2 "--dampening 0.5 has no effect with --momentum 0" --store "$work/new" "${syn[@]}" \
	--momentum 0 --dampening 0.5
expect_error 2 "invalid --dampening 1.5 (must be in [0, 1])" --store "$work/new" "${syn[@]}" \
	--dampening 1.5
# the exit status: 2 when the command line alone is wrong (a value out of range, options that
# contradict each other), 1 when the data, the store or the machine refuse the run
for bad in "--optimizer adam --betas 0.9,1.5" "--keep-top 2" "--lr -0.1" "--dampening 1.5" \
	"--optimizer adam --momentum 0.5" "--val-split 0 --monitor val_acc"; do
	# shellcheck disable=SC2086 # the words of each case are separate options
	"$TRAIN" --store "$work/new" "${syn[@]}" $bad 2>/dev/null
	rc=$?
	[ $rc -eq 2 ] || fail "exit $rc, want 2 (usage) for: $bad"
done
$TRAIN --store "$work/edge" "${syn[@]}" --batch-size 8000 --keep-last 2 --keep-top 1 \
	--dampening 1 --epochs 2 || fail "a batch of the whole training set"
$TRAIN --store "$work/noval" "${nval[@]}" --keep-last 1 --epochs 1 || fail "--val-split 0"
# resumes that contradict the stored run
expect_error 1 "--epochs 1 is below epoch 2, where the run resumes" \
	--store "$work/edge" --resume --epochs 1 --threads 2
# both on the command line: a usage error, as for a new run
expect_error 2 "--keep-top 1 has no effect without --keep-last N" \
	--store "$work/edge" --resume --epochs 3 --keep-last 0 --keep-top 1
# --keep-top alone, against the run's stored keep-last 0: refused for the run's settings
$TRAIN --store "$work/kl0" "${syn[@]}" --epochs 1 --quiet || fail "a run keeping every checkpoint"
expect_error 1 "--keep-top 1 has no effect without --keep-last N" \
	--store "$work/kl0" --resume --epochs 2 --keep-top 1
expect_error 1 "--keep-top needs validation samples, and the run's --val-split 0" \
	--store "$work/noval" --resume --epochs 3 --keep-top 1
$TRAIN --store "$work/edge" --resume --epochs 2 --quiet || fail "resume to the epoch reached"

# store paths that cannot hold a store; a data directory missing one file
: >"$work/afile"
expect_error 1 "cannot create store $work/afile (it exists and is not a usable store" \
	--store "$work/afile" "${syn[@]}"
[ -f "$work/afile" ] && [ ! -s "$work/afile" ] || fail "the file given as --store changed"
ln -s "$work/nothing" "$work/dangling"
expect_error 1 "cannot create store $work/dangling: it is a symbolic link to a missing target" \
	--store "$work/dangling" "${syn[@]}"
[ ! -e "$work/nothing" ] || fail "a dangling --store link was followed"
mkdir "$work/notes" && echo hello >"$work/notes/notes.txt"
expect_error 1 "not a ckpt store (no data.mdb)" --store "$work/notes" "${syn[@]}"
[ "$(ls -A "$work/notes")" = notes.txt ] || fail "a directory of other files was written into"
idx_set "$work/miss" 40x2x3 8x2x3
rm "$work/miss/t10k-labels-idx1-ubyte"
expect_error 1 "missing data file $work/miss/t10k-labels-idx1-ubyte[.gz]" --store "$work/new" \
	--data "$work/miss" --layers 6,4 --val-split 8
# the Fashion-MNIST package missing: the hint holds for an installed ckpt-train too (make deps
# only in the source tree), also for --data naming its directory, and when the directory is
# there but empty; a private mount namespace hides the package where it is installed
fm=/usr/share/datasets/fashion-mnist
hint="install it with apt-get install dataset-fashion-mnist, or 'make deps' in the ckptfs"
hint+=" source tree"
absent=(false) empty=(false) # commands that run ckpt-train with $fm absent, and empty
if [ "$(id -u)" -eq 0 ] && [ -d "${fm%/*}" ] && unshare -m true 2>/dev/null; then
	absent=(unshare -m sh -c 'mount -t tmpfs none "$0" && exec "$@"' "${fm%/*}")
	empty=(unshare -m sh -c 'mount -t tmpfs none "$0" && mkdir "$0/${1##*/}" && shift &&
		exec "$@"' "${fm%/*}" "$fm")
elif [ ! -e "$fm" ]; then
	absent=()
fi
if [ "${absent[*]}" != false ]; then
	run_as=(${absent[@]+"${absent[@]}"})
	expect_error 1 "cannot open $fm (No such file or directory; $hint)" \
		--store "$work/new" --layers 784,8,10
	expect_error 1 "cannot open $fm/ (No such file or directory; $hint)" \
		--store "$work/new" --data "$fm/" --layers 784,8,10
	run_as=()
else
	echo "note: the message for a missing Fashion-MNIST not tried (it is installed, and no unshare -m)"
fi
if [ "${empty[*]}" != false ]; then
	run_as=("${empty[@]}")
	for data in fashion-mnist "$fm/"; do
		expect_error 1 "missing data file $fm/train-images-idx3-ubyte[.gz]; $hint" \
			--store "$work/new" --data "$data" --layers 784,8,10
	done
	run_as=()
else
	echo "note: the message for an empty $fm not tried (it needs root and unshare -m)"
fi
# read-only places, as a user other than root (root may write anyway)
as_user=()
[ "$(id -u)" -ne 0 ] || as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
chmod 755 "$work"
if "${as_user[@]}" "$TRAIN" --version >/dev/null 2>&1; then
	mkdir "$work/ro" && chmod 555 "$work/ro"
	run_as=("${as_user[@]}")
	expect_error 1 "cannot create store $work/ro/s ($work/ro/s: cannot create the directory (Permission denied))" \
		--store "$work/ro/s" "${syn[@]}"
	$TRAIN --store "$work/rostore" "${syn[@]}" --epochs 1 || fail "training"
	chmod -R a-w,a+rX "$work/rostore"
	expect_error 1 "cannot train into store $work/rostore: $work/rostore/data.mdb is not writable" \
		--store "$work/rostore" --resume --epochs 2
	run_as=()
	chmod -R u+w "$work/rostore" "$work/ro"
else
	echo "note: read-only stores not tried (cannot run as another user)"
fi

# a resume on a data set that changed since the run started (other pixels, other labels, more
# samples)
printf '0,2,1\n1,3,4\n2,5,6\n0,7,8\n1,9,10\n2,1,1\n' >"$work/d_train.csv"
$TRAIN --store "$work/drun" --data "$work/d_train.csv" --layers 2,3 --val-split 2 --batch-size 2 \
	--epochs 1 --quiet --no-sync || fail "training on d_train.csv"
$TRAIN --store "$work/drun" --resume --epochs 2 --quiet --no-sync || fail "resume on the same data"
sed -i 's/^2,1,1$/2,1,2/' "$work/d_train.csv"
expect_error 1 "the data $work/d_train.csv has changed since the run started: it has other pixels" \
	--store "$work/drun" --resume --epochs 3
sed -i 's/^2,1,2$/1,1,1/' "$work/d_train.csv"
expect_error 1 "the data $work/d_train.csv has changed since the run started: it has other labels" \
	--store "$work/drun" --resume --epochs 3
echo "0,3,3" >>"$work/d_train.csv"
expect_error 1 "it has 7 training samples, not 6" \
	--store "$work/drun" --resume --epochs 3

# options of one optimizer given to another would be ignored: refused
expect_error 2 "--momentum is an option of sgd only, and the optimizer is adam" \
	--store "$work/new" "${syn[@]}" --optimizer adam --momentum 0.5
expect_error 2 "--momentum is an option of sgd only, and the optimizer is adamw" \
	--store "$work/new" "${syn[@]}" --momentum 0.5 --optimizer adamw
expect_error 2 "--dampening is an option of sgd only" --store "$work/new" "${syn[@]}" \
	--optimizer adam --dampening 0.1
expect_error 2 "--nesterov is an option of sgd only" --store "$work/new" "${syn[@]}" \
	--optimizer adamw --nesterov
expect_error 2 "--betas is an option of adam and adamw only, and the optimizer is sgd" \
	--store "$work/new" "${syn[@]}" --betas 0.9,0.99
expect_error 2 "--eps is an option of adam and adamw only" --store "$work/new" "${syn[@]}" \
	--optimizer sgd --eps 1e-6
# each optimizer's own options, and the defaults, still work
$TRAIN --store "$work/adam" "${syn[@]}" --epochs 1 --optimizer adam --betas 0.8,0.99 --eps 1e-7 \
	--weight-decay 0.01 || fail "adam with its options"
$TRAIN --store "$work/sgd" "${syn[@]}" --epochs 1 --momentum 0.5 --dampening 0.1 \
	--weight-decay 0.01 || fail "sgd with its options"
# on resume, against the stored run's optimizer
expect_error 1 "--momentum is an option of sgd only, and the run's optimizer is adam" \
	--store "$work/adam" --resume --epochs 2 --momentum 0.9
expect_error 1 "--betas is an option of adam and adamw only, and the run's optimizer is sgd" \
	--store "$work/sgd" --resume --epochs 2 --betas 0.9,0.999
expect_error 1 "--eps is an option of adam and adamw only" \
	--store "$work/sgd" --resume --epochs 2 --optimizer sgd --eps 1e-8

# values whose form alone is wrong are usage errors (exit 2), found before the store is looked at
for bad in "--resume abc" "--resume 0" "--resume 1.5" "--device gpu" "--device cuda:x"; do
	# shellcheck disable=SC2086
	$TRAIN --store "$work/nonexistent" $bad 2>"$work/err"
	rc=$?
	[ $rc -eq 2 ] && [ "$(wc -l <"$work/err")" -eq 1 ] || fail "$bad: exit $rc: $(cat "$work/err")"
	grep -q "invalid --resume\|unknown device" "$work/err" || fail "$bad: $(cat "$work/err")"
done
$TRAIN --store "" --data synthetic 2>"$work/err"
[ $? -eq 2 ] && grep -q "invalid --store ''" "$work/err" || fail "--store '': $(cat "$work/err")"

# control characters in a path are written as \xNN: the error stays one line
$TRAIN --store "$work/no"$'\n'"such" --resume 2>"$work/err" && fail "resume of a missing store succeeded"
[ "$(wc -l <"$work/err")" -eq 1 ] && grep -q 'no\\x0asuch' "$work/err" ||
	fail "a newline in the store path split the error: $(cat "$work/err")"

# a long path (1,400 bytes, well under PATH_MAX) does not cut the reason off the error line
long=$(printf 'x%.0s' $(seq 200))
long="$work/$long/$long/$long/$long/$long/$long/$long/nothing"
$TRAIN --store "$long/s" --resume 2>"$work/err" && fail "resume of a missing long path succeeded"
grep -q "No such file or directory)\$" "$work/err" || fail "long path: reason cut off: $(tail -c 200 "$work/err")"
"$BIN/ckpt" info "$long" 2>"$work/err" && fail "ckpt info of a missing long path succeeded"
grep -q "No such file or directory)\$" "$work/err" || fail "ckpt info, long path: $(tail -c 200 "$work/err")"

# a file size limit (ulimit -f) below the store's size: one error line and exit 1, not a
# silent death by SIGXFSZ (exit 153); the store keeps its checkpoints
$TRAIN --store "$work/fsize" "${syn[@]}" --epochs 2 || fail "training for the ulimit -f case"
for cmd in "$TRAIN --store $work/fsize --resume --epochs 4" "$BIN/ckpt gc $work/fsize --keep-last 1"; do
	rc=0
	(ulimit -f 64 && exec $cmd) >/dev/null 2>"$work/err" || rc=$?
	[ "$rc" -eq 1 ] || fail "'$cmd' under ulimit -f 64 exited $rc: $(cat "$work/err")"
	[ "$(wc -l <"$work/err")" -eq 1 ] || fail "'$cmd' under ulimit -f: not one line: $(cat "$work/err")"
	grep -q "file too large: the file size limit (ulimit -f) is" "$work/err" ||
		fail "'$cmd' under ulimit -f: $(cat "$work/err")"
done
"$BIN/ckpt" verify "$work/fsize" >/dev/null || fail "the store was damaged under ulimit -f"
(ulimit -f 1 && exec "$BIN/ckpt" export "$work/fsize" latest --format checkpoint -o "$work/fsize.pt") \
	2>"$work/err" && fail "an export past ulimit -f succeeded"
grep -q "file too large: the file size limit (ulimit -f) is 1024 bytes" "$work/err" ||
	fail "export under ulimit -f: $(cat "$work/err")"
[ ! -e "$work/fsize.pt" ] || fail "an export past ulimit -f left a file"

echo "ok: bad input is refused with one line and no store change"
