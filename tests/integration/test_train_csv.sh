#!/usr/bin/env bash
# tests/integration/test_train_csv.sh - training from CSV files: a header line, label first,
# pixels 0..255; the test set is the sibling file named with "test" for "train".
set -uo pipefail
. "$(dirname "$0")/lib.sh"
work=$WORK
# three separable classes: the label decides which third of the 9 pixels is bright
awk -v seed=1 'BEGIN {
	srand(seed)
	for (f = 0; f < 2; f++) {
		out = f ? "'"$work"'/blobs_test.csv" : "'"$work"'/blobs_train.csv"
		print "label,p1,p2,p3,p4,p5,p6,p7,p8,p9" > out
		for (i = 0; i < (f ? 150 : 900); i++) {
			y = i % 3
			line = y
			for (j = 0; j < 9; j++)
				line = line "," int((int(j / 3) == y ? 150 : 20) + rand() * 100)
			print line > out
		}
	}
}'
$TRAIN --store "$work/s" --data "$work/blobs_train.csv" --layers 9,8,3 --val-split 150 \
	--batch-size 32 --epochs 3 --threads 1 --no-sync >"$work/out" || fail "training on CSV"
cat "$work/out"
acc=$(sed -n 's/^epoch 3\/3 .*test_acc \([0-9.]*\).*/\1/p' "$work/out")
[ -n "$acc" ] || fail "no test_acc from the sibling test file"
awk -v a="$acc" 'BEGIN { exit !(a > 0.9) }' || fail "test accuracy $acc on separable data"
$CKPT info "$work/s" | grep -q "^dataset: .*blobs_train.csv$" || fail "dataset not recorded"
# without a sibling there is no test set, and no test_acc: one note on stderr says so; the
# recorded metrics (ckpt log) are the others
mv "$work/blobs_test.csv" "$work/other.csv"
$TRAIN --store "$work/t" --data "$work/blobs_train.csv" --layers 9,8,3 --val-split 150 \
	--epochs 1 --threads 1 --no-sync >"$work/out" 2>"$work/err" || fail "training without a test file"
grep -q test_acc "$work/out" && fail "test_acc without a test set"
[ "$(wc -l <"$work/err")" -eq 1 ] &&
	grep -qF "note: no test set: $work/blobs_test.csv not found; test_loss and test_acc are not recorded" "$work/err" ||
	fail "no note on the missing test set: $(cat "$work/err")"
log=$($CKPT log "$work/t") || fail "ckpt log of a run without a test set"
grep -q "train_loss .*val_acc" <<<"$log" && ! grep -q test_ <<<"$log" || fail "metrics without a test set: $log"
cp "$work/blobs_train.csv" "$work/blobs.csv"
$TRAIN --store "$work/u" --data "$work/blobs.csv" --layers 9,8,3 --val-split 150 \
	--epochs 1 --threads 1 --no-sync --quiet 2>"$work/err" || fail "training on blobs.csv"
[ ! -s "$work/err" ] || fail "--quiet printed: $(cat "$work/err")"
$TRAIN --store "$work/u" --data "$work/blobs.csv" --resume --epochs 2 --threads 1 >/dev/null 2>"$work/err" ||
	fail "resume on blobs.csv"
grep -q "note: no test set: the name of .*blobs.csv has no 'train'" "$work/err" || fail "note: $(cat "$work/err")"
echo "ok: CSV training with and without a test file (test_acc $acc)"
