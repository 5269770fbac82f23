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
# --quiet drops the progress and epoch lines only: the note stays
$TRAIN --store "$work/tq" --data "$work/blobs_train.csv" --layers 9,8,3 --val-split 150 \
	--epochs 1 --threads 1 --no-sync --quiet >"$work/out" 2>"$work/err" || fail "training without a test file, --quiet"
[ ! -s "$work/out" ] && [ "$(wc -l <"$work/err")" -eq 1 ] &&
	grep -qF "note: no test set: $work/blobs_test.csv not found" "$work/err" ||
	fail "--quiet: no note on the missing test set: $(cat "$work/err")"
cp "$work/blobs_train.csv" "$work/blobs.csv"
$TRAIN --store "$work/u" --data "$work/blobs.csv" --layers 9,8,3 --val-split 150 \
	--epochs 1 --threads 1 --no-sync --quiet 2>"$work/err" || fail "training on blobs.csv"
[ "$(wc -l <"$work/err")" -eq 1 ] && grep -q "note: no test set: the name of .*blobs.csv has no 'train'" "$work/err" ||
	fail "--quiet, blobs.csv: $(cat "$work/err")"
$TRAIN --store "$work/u" --data "$work/blobs.csv" --resume --epochs 2 --threads 1 >/dev/null 2>"$work/err" ||
	fail "resume on blobs.csv"
grep -q "note: no test set: the name of .*blobs.csv has no 'train'" "$work/err" || fail "note: $(cat "$work/err")"
echo "ok: CSV training with and without a test file (test_acc $acc)"

# data that moved: the run resumes from the data's new place (--data NEWPATH, any spelling),
# which is recorded for later resumes; a data set that is not the same is refused, naming what
# differs; the result is the same as a run that never moved
mkdir "$work/a" "$work/b" "$work/c"
mv "$work/blobs_train.csv" "$work/a/"
mv "$work/other.csv" "$work/a/blobs_test.csv"
opts=(--layers 9,8,3 --val-split 150 --batch-size 32 --threads 1 --no-sync --quiet)
$TRAIN --store "$work/straight" --data "$work/a/blobs_train.csv" --epochs 3 "${opts[@]}" ||
	fail "straight run"
(cd "$work" && $TRAIN --store m --data a/blobs_train.csv --epochs 1 "${opts[@]}") || fail "first epoch"
mv "$work/a/blobs_train.csv" "$work/a/blobs_test.csv" "$work/b/"
before=$($CKPT show "$work/m" latest)
$TRAIN --store "$work/m" --resume --epochs 2 2>"$work/err" && fail "resume with the data gone: exit 0"
grep -qF "cannot open $work/a/blobs_train.csv (No such file or directory); it is the run's data: if it moved, give --data NEWPATH" "$work/err" ||
	fail "data gone: $(cat "$work/err")"
# only the training file moved: its test set is missing, so it is not the same data set
cp "$work/b/blobs_train.csv" "$work/c/"
$TRAIN --store "$work/m" --resume --epochs 2 --data "$work/c/blobs_train.csv" 2>"$work/err" &&
	fail "resume on data without its test file: exit 0"
grep -qF "refusing to resume: --data $work/c/blobs_train.csv is not the run's data set ($work/a/blobs_train.csv): it has 0 test samples, not 150" "$work/err" ||
	fail "test file missing: $(cat "$work/err")"
# the same counts, other pixels
cp "$work/b/blobs_test.csv" "$work/c/"
sed -i '2s/^\([0-9]*\),[0-9]*/\1,0/' "$work/c/blobs_train.csv"
$TRAIN --store "$work/m" --resume --epochs 2 --data "$work/c/blobs_train.csv" 2>"$work/err" &&
	fail "resume on other pixels: exit 0"
grep -q "is not the run's data set .*: it has other pixels" "$work/err" || fail "other pixels: $(cat "$work/err")"
[ "$($CKPT show "$work/m" latest)" = "$before" ] || fail "a refused resume changed the store"
(cd "$work/b/" && $TRAIN --store ../m --resume --epochs 2 --data ./blobs_train.csv "${opts[@]}") ||
	fail "resume with --data at the new place"
$TRAIN --store "$work/m" --resume --epochs 3 "${opts[@]}" || fail "resume after the move without --data"
[ "$($CKPT show "$work/m" 3)" = "$($CKPT show "$work/straight" 3)" ] ||
	fail "the run that moved differs from the straight one"
echo "ok: a run resumes on its data moved with its test file, and refuses other data"

# blanks around a value are allowed on both sides (numpy.loadtxt reads such files); the values
# are the same as without them. Hexadecimal is not a CSV number.
mkdir -p "$work/ws" "$work/plain"
printf '0,1,2,9\n1,2,3,4\n2,3,4,5\n0,9,8,7\n' >"$work/plain/p_train.csv"
printf '0 , 1 ,2, 9\n1,2 ,3 ,4 \n2,\t3\t,4,5\n 0,9 , 8,7\t\n' >"$work/ws/p_train.csv"
for d in plain ws; do
	$TRAIN --store "$work/$d/s" --data "$work/$d/p_train.csv" --layers 3,3 --val-split 0 \
		--batch-size 2 --epochs 1 --threads 1 --no-sync --quiet 2>"$work/err" ||
		fail "CSV ($d): $(cat "$work/err")"
done
[ "$($CKPT show "$work/ws/s" 1)" = "$($CKPT show "$work/plain/s" 1)" ] ||
	fail "blanks around CSV values changed the training"
printf '0,0x10,2,3\n' >"$work/ws/h_train.csv"
$TRAIN --store "$work/ws/h" --data "$work/ws/h_train.csv" --layers 3,3 --val-split 0 \
	--quiet 2>"$work/err" && fail "a hexadecimal CSV value was accepted"
grep -q "field 2 '0x10' is not a number" "$work/err" || fail "hex: $(cat "$work/err")"
echo "ok: blanks around CSV values are allowed, hexadecimal is refused"

# the header pandas writes for a DataFrame built from an array (column indices 0,1,...,n-1) is
# not a sample: 40 rows are 40 steps of one sample
(echo 0,1,2; for _ in $(seq 20); do echo 1,200,10; echo 0,10,200; done) >"$work/pd_train.csv"
$TRAIN --store "$work/pd" --data "$work/pd_train.csv" --layers 2,2 --val-split 0 --epochs 1 \
	--batch-size 1 --threads 1 --no-sync >"$work/out" 2>"$work/err" || fail "pandas header: $(cat "$work/err")"
grep -q '^epoch 1/1  step 40 ' "$work/out" || fail "pandas header: $(cat "$work/out")"
grep -q "note: line 1 of $work/pd_train.csv (0,1,...,2) is read as a header of column indices" \
	"$work/err" || fail "pandas header: no note: $(cat "$work/err")"
# the test file replaces the "train" that stands as a word (not the one inside "constrained")
mkdir "$work/word"
for f in train_constrained test_constrained; do
	for _ in 1 2 3 4; do echo 1,200,10; echo 0,10,200; done >"$work/word/$f.csv"
done
$TRAIN --store "$work/word/s" --data "$work/word/train_constrained.csv" --layers 2,2 --val-split 2 \
	--epochs 1 --threads 1 --no-sync >"$work/out" 2>"$work/err" || fail "train_constrained.csv: $(cat "$work/err")"
grep -q test_acc "$work/out" && [ ! -s "$work/err" ] ||
	fail "test_constrained.csv was not taken as the test set: $(cat "$work/out" "$work/err")"
# a value below a double's normal range is read as what it rounds to (about 0)
printf '1,2,1e-310\n0,1e-400,4\n' >"$work/tiny_train.csv"
$TRAIN --store "$work/tiny" --data "$work/tiny_train.csv" --layers 2,2 --val-split 0 --epochs 1 \
	--threads 1 --no-sync --quiet 2>"$work/err" || fail "values that underflow were refused: $(cat "$work/err")"
echo "ok: a pandas index header, the test file of train_constrained.csv, values that underflow"

# pixels scaled to [0, 1] before the CSV was written (pandas after / 255) are divided by 255
# again: one note says so, also under --quiet; a file with a value above 1 gets none
printf '0,0.1,0.9\n1,0.8,0.05\n0,0,1\n1,1,0.25\n' >"$work/unit_train.csv"
$TRAIN --store "$work/unit" --data "$work/unit_train.csv" --layers 2,2 --val-split 0 --epochs 1 \
	--threads 1 --no-sync --quiet 2>"$work/err" || fail "scaled CSV: $(cat "$work/err")"
[ "$(grep -c . "$work/err")" -eq 2 ] &&
	grep -qF "note: every feature value in $work/unit_train.csv lies in [0, 1]: they look scaled already, but ckpt-train expects pixels 0..255 and divides them by 255" "$work/err" ||
	fail "scaled CSV: no note: $(cat "$work/err")"
printf '0,0.1,0.9\n1,0.8,1.5\n' >"$work/big_train.csv"
$TRAIN --store "$work/big" --data "$work/big_train.csv" --layers 2,2 --val-split 0 --epochs 1 \
	--threads 1 --no-sync --quiet 2>"$work/err" || fail "CSV with 1.5: $(cat "$work/err")"
grep -q "look scaled" "$work/err" && fail "a note on a CSV with a value above 1: $(cat "$work/err")"
# the test file is looked at too: a scaled one beside a 0..255 training file gave a wrong
# test_acc without a word; a file of zeros only looks scaled no more than it looks like bytes
mkdir "$work/split"
printf '0,10,230\n1,200,5\n0,0,255\n1,255,60\n' >"$work/split/pix_train.csv"
printf '0,0.1,0.9\n1,0.8,0.05\n' >"$work/split/pix_test.csv"
$TRAIN --store "$work/split/s" --data "$work/split/pix_train.csv" --layers 2,2 --val-split 0 \
	--epochs 1 --threads 1 --no-sync --quiet 2>"$work/err" ||
	fail "scaled test file: $(cat "$work/err")"
[ "$(grep -c . "$work/err")" -eq 1 ] &&
	grep -qF "note: every feature value in $work/split/pix_test.csv lies in [0, 1]: they look" \
		"$work/err" || fail "scaled test file: no note naming it: $(cat "$work/err")"
printf '0,0,0\n1,0,0.0\n' >"$work/zero_train.csv"
$TRAIN --store "$work/zero" --data "$work/zero_train.csv" --layers 2,2 --val-split 0 --epochs 1 \
	--threads 1 --no-sync --quiet 2>"$work/err" || fail "CSV of zeros: $(cat "$work/err")"
grep -q "look scaled" "$work/err" && fail "a note on a CSV of zeros only: $(cat "$work/err")"
echo "ok: a CSV of values in [0, 1] (training or test file) gets a note: they are divided by 255"
