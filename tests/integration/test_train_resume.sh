#!/usr/bin/env bash
# tests/integration/test_train_resume.sh - N epochs straight vs k epochs + `--resume` to N give
# byte-identical checkpoints (`ckpt show` of the last epoch) for SGD and Adam; --resume best /
# EPOCH continue from the named checkpoint; a finished run resumed to the same --epochs is a no-op;
# a --resume with any option that differs from the stored run's is refused (exit 1, one line,
# data.mdb unchanged), one row per option compared.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
work=$WORK
common=(--data synthetic --layers 24,16,4 --val-split 2000 --batch-size 50 --threads 2 --quiet --no-sync)

for opt in sgd adam; do
	extra=()
	[ $opt = sgd ] && extra=(--nesterov --weight-decay 0.001 --lr-schedule step:2:0.5)
	$TRAIN --store "$work/$opt-straight" --optimizer $opt --epochs 5 "${common[@]}" "${extra[@]}" ||
		fail "$opt straight run"
	$TRAIN --store "$work/$opt-resumed" --optimizer $opt --epochs 2 "${common[@]}" "${extra[@]}" ||
		fail "$opt first part"
	$TRAIN --store "$work/$opt-resumed" --resume --epochs 3 --threads 2 --quiet || fail "$opt resume 1"
	$TRAIN --store "$work/$opt-resumed" --resume latest --epochs 5 --threads 2 --quiet ||
		fail "$opt resume 2"
	a=$($CKPT show "$work/$opt-straight" 5) || fail "ckpt show straight"
	b=$($CKPT show "$work/$opt-resumed" 5) || fail "ckpt show resumed"
	[ -n "$a" ] || fail "empty ckpt show"
	[ "$a" = "$b" ] || { diff <(echo "$a") <(echo "$b"); fail "$opt: resumed run differs"; }
	# the optimizer state is in the comparison
	grep -q "$([ $opt = sgd ] && echo momentum_buffer || echo exp_avg_sq)" <<<"$a" ||
		fail "$opt: no optimizer state in ckpt show"
	echo "ok: $opt resume is bit-exact"
done

# resume from an older epoch rewrites the later ones identically
$TRAIN --store "$work/sgd-resumed" --resume 2 --epochs 5 --threads 2 --quiet || fail "resume 2"
[ "$($CKPT show "$work/sgd-resumed" 5)" = "$($CKPT show "$work/sgd-straight" 5)" ] ||
	fail "resume from epoch 2 differs"
# the mount's directory name works as well (as for `ckpt show`); junk is refused
$TRAIN --store "$work/sgd-resumed" --resume epoch-0003 --epochs 5 --threads 2 --quiet 2>"$work/err" ||
	fail "resume epoch-0003"
grep -q "note: resuming from epoch 3: stored epochs 4..5 of the earlier run are replaced as they are trained again" \
	"$work/err" || fail "resume from an earlier epoch does not say what it replaces: $(cat "$work/err")"
[ "$($CKPT show "$work/sgd-resumed" 5)" = "$($CKPT show "$work/sgd-straight" 5)" ] ||
	fail "resume from epoch-0003 differs"
for bad in " 3" +3 epoch- epoch-x 3x; do
	$TRAIN --store "$work/sgd-resumed" --resume "$bad" --epochs 5 --quiet 2>"$work/err" &&
		fail "--resume '$bad' accepted"
	grep -q "invalid --resume" "$work/err" || fail "--resume '$bad': $(cat "$work/err")"
done
$TRAIN --store "$work/sgd-resumed" --resume epoch-0009 --epochs 10 --quiet 2>"$work/err" &&
	fail "--resume epoch-0009 accepted"
grep -q "cannot resume: epoch-0009 is not in store .* (it has epoch-0001..epoch-0005)" "$work/err" ||
	fail "epoch-0009: $(cat "$work/err")"
$TRAIN --store "$work/sgd-resumed" --resume best --epochs 5 --threads 2 --quiet || fail "resume best"
# --resume given twice: the last one counts, as with argparse (a bare one is latest)
out=$($TRAIN --store "$work/sgd-resumed" --resume 2 --resume --epochs 5 --threads 2) ||
	fail "--resume 2 --resume"
grep -q "nothing to do" <<<"$out" || fail "--resume 2 --resume resumed from epoch 2: $out"
$TRAIN --store "$work/sgd-resumed" --resume 1 --resume epoch-0003 --epochs 5 --threads 2 --quiet \
	2>"$work/err" || fail "--resume 1 --resume epoch-0003: $(cat "$work/err")"
grep -q "resuming from epoch 3:" "$work/err" || fail "--resume 1 --resume epoch-0003: $(cat "$work/err")"
out=$($TRAIN --store "$work/sgd-resumed" --resume --epochs 5 --threads 2) || fail "no-op resume"
grep -q "nothing to do" <<<"$out" || fail "no-op resume says: $out"
echo "ok: resume from an epoch number, best, and a finished run"

# retention changed on resume applies at once and is kept; the best survives it
$TRAIN --store "$work/sgd-resumed" --resume --epochs 6 --keep-last 2 --quiet || fail "resume with --keep-last"
info=$($CKPT info "$work/sgd-resumed")
grep -q '^keep-last: 2$' <<<"$info" || fail "keep-last not stored: $info"
n=$(sed -n 's/^checkpoints: //p' <<<"$info")
[ "$n" -ge 2 ] && [ "$n" -le 3 ] || fail "retention left $n checkpoints"
grep -q '^latest: epoch-0006$' <<<"$info" || fail "latest is not 6: $info"
grep -q '^best: epoch-' <<<"$info" || fail "no best after retention"
echo "ok: --keep-last on resume"

# a --resume whose options contradict the stored run is refused, one option at a time: exit 1,
# one line naming the option and both values, and data.mdb byte for byte as it was
$TRAIN --store "$work/ref-sgd" "${common[@]}" --epochs 1 --seed 7 --lr 0.05 --momentum 0.9 \
	--dampening 0.1 --weight-decay 0.001 --lr-schedule step:2:0.5 --monitor val_loss ||
	fail "the sgd run to resume"
$TRAIN --store "$work/ref-adam" "${common[@]}" --epochs 1 --optimizer adam --betas 0.8,0.99 \
	--eps 1e-7 || fail "the adam run to resume"
: >"$work/other.csv"
refusals=(
	"sgd|--layers 24,8,4|refusing to resume: the run's architecture is --layers 24,16,4, not 24,8,4"
	"sgd|--optimizer adam|refusing to resume: the run's optimizer is sgd, not adam"
	"sgd|--betas 0.9,0.99|--betas is an option of adam and adamw only, and the run's optimizer is sgd: it would be ignored (drop it or use --optimizer adam)"
	"adam|--momentum 0.9|--momentum is an option of sgd only, and the run's optimizer is adam: it would be ignored (drop it or use --optimizer sgd)"
	"sgd|--data $work/other.csv|refusing to resume: --data $work/other.csv differs from the run's synthetic (a resumed run keeps its settings)"
	"sgd|--batch-size 64|refusing to resume: --batch-size 64 differs from the run's 50 (a resumed run keeps its settings)"
	"sgd|--val-split 1000|refusing to resume: --val-split 1000 differs from the run's 2000 (a resumed run keeps its settings)"
	"sgd|--seed 8|refusing to resume: --seed 8 differs from the run's 7 (a resumed run keeps its settings)"
	"sgd|--lr 0.1|refusing to resume: --lr 0.1 differs from the run's 0.05 (a resumed run keeps its settings)"
	"sgd|--momentum 0.5|refusing to resume: --momentum 0.5 differs from the run's 0.9 (a resumed run keeps its settings)"
	"sgd|--dampening 0|refusing to resume: --dampening 0 differs from the run's 0.1 (a resumed run keeps its settings)"
	"sgd|--nesterov|refusing to resume: the run was trained without --nesterov"
	"sgd|--weight-decay 0.01|refusing to resume: --weight-decay 0.01 differs from the run's 0.001 (a resumed run keeps its settings)"
	"adam|--betas 0.9,0.99|refusing to resume: --betas 0.9,0.99 differs from the run's 0.8,0.99 (a resumed run keeps its settings)"
	"adam|--betas 0.8,0.999|refusing to resume: --betas 0.8,0.999 differs from the run's 0.8,0.99 (a resumed run keeps its settings)"
	"adam|--eps 1e-8|refusing to resume: --eps 1e-08 differs from the run's 1e-07 (a resumed run keeps its settings)"
	"sgd|--lr-schedule cosine|refusing to resume: --lr-schedule cosine differs from the run's step:2:0.5 (a resumed run keeps its settings)"
	"sgd|--lr-schedule step:3:0.5|refusing to resume: --lr-schedule step:3:0.5 differs from the run's step:2:0.5 (a resumed run keeps its settings)"
	"sgd|--lr-schedule step:2:0.25|refusing to resume: --lr-schedule step:2:0.25 differs from the run's step:2:0.5 (a resumed run keeps its settings)"
	"sgd|--monitor val_acc|refusing to resume: --monitor val_acc differs from the run's val_loss (a resumed run keeps its settings)"
)
for row in "${refusals[@]}"; do
	IFS='|' read -r which opts want <<<"$row"
	store=$work/ref-$which
	before=$(sha256sum <"$store/data.mdb")
	# shellcheck disable=SC2086 # the words of each row are separate options
	$TRAIN --store "$store" --resume --epochs 2 --threads 2 --quiet $opts 2>"$work/err"
	rc=$?
	[ $rc -eq 1 ] || fail "resume $which with $opts: exit $rc, want 1: $(cat "$work/err")"
	[ "$(wc -l <"$work/err")" -eq 1 ] && grep -qxF "ckpt-train: error: $want" "$work/err" ||
		fail "resume $which with $opts: $(cat "$work/err")"
	[ "$(sha256sum <"$store/data.mdb")" = "$before" ] || fail "resume $which with $opts changed data.mdb"
done
# the same options, as the run has them, resume
$TRAIN --store "$work/ref-sgd" --resume --epochs 2 --threads 2 --quiet --seed 7 --lr 0.05 \
	--momentum 0.9 --dampening 0.1 --weight-decay 0.001 --lr-schedule step:2:0.5 --monitor val_loss \
	--batch-size 50 --val-split 2000 --layers 24,16,4 --optimizer sgd --data synthetic ||
	fail "a resume repeating the run's own options"
$TRAIN --store "$work/ref-adam" --resume --epochs 2 --threads 2 --quiet --betas 0.8,0.99 --eps 1e-7 ||
	fail "an adam resume repeating the run's own options"
echo "ok: ${#refusals[@]} resumes that contradict the run are refused and change nothing"

# a damaged train.state or train.rng (records sealed with valid CRCs, so only their meaning is
# wrong) is refused, never read as the defaults: an all-zero xoshiro256** state made the shuffle
# spin forever, deaf to signals; a truncated train.state resumed a cuda run on the CPU unasked
[ -x "$TOOLS/store_fixture" ] || fail "build/tests/tools/store_fixture is missing (run make)"
damaged=(
	'train.rng|{"algorithm":"xoshiro256**","state":["0","0","0","0"]}|its train.rng is damaged (an all-zero state)'
	'train.rng|{"algorithm":"xoshiro256**","state":["0","1","x","2"]}|its train.rng is damaged (a word is not hexadecimal)'
	'train.rng|{"algorithm":"xoshiro256**","state":["-1","0","0","0"]}|its train.rng is damaged (a word is not hexadecimal)'
	'train.rng|{"algorithm":"xoshiro256**","state":["0x1","0","0","0"]}|its train.rng is damaged (a word is not hexadecimal)'
	'train.rng|{"algorithm":"xoshiro256**","state":["1","2","3","4","5"]}|its train.rng is damaged (not a xoshiro256** state of four words)'
	'train.state|{"epoch":2,"device":"cuda:0"|its train.state is damaged (not a JSON object)'
	'train.state|{"epoch":2,"threads":1,"device":"../../x"}|its train.state is damaged (its device is not cpu, cuda or cuda:N)'
	'train.state|{"epoch":2,"threads":-3,"device":"cpu"}|its train.state is damaged (its thread count is not 0..1024)'
)
for row in "${damaged[@]}"; do
	IFS='|' read -r key value want <<<"$row"
	rm -rf "$work/damaged"
	cp -a "$work/ref-sgd" "$work/damaged"
	last=$($CKPT info "$work/damaged" | sed -n 's/^latest: epoch-0*//p')
	"$TOOLS/store_fixture" set-extra "$work/damaged" "$last" "$key" "$value" || fail "set-extra $key"
	before=$(sha256sum <"$work/damaged/data.mdb")
	timeout 20 $TRAIN --store "$work/damaged" --resume --epochs $((last + 1)) --quiet 2>"$work/err"
	rc=$?
	[ $rc -eq 1 ] && [ "$(wc -l <"$work/err")" -eq 1 ] &&
		grep -qxF "ckpt-train: error: cannot resume from epoch $last: $want" "$work/err" ||
		fail "resume with $key = $value: exit $rc: $(cat "$work/err")"
	[ "$(sha256sum <"$work/damaged/data.mdb")" = "$before" ] || fail "a refused resume changed data.mdb"
done
echo "ok: ${#damaged[@]} damaged train.state / train.rng records are refused"

# --layers is a list of numbers: sizes typed with leading zeros are the same architecture,
# stored as numbers print (it was stored as typed and compared as text: resume refused)
$TRAIN --store "$work/zeros" --data synthetic --layers 020,010 --epochs 1 --val-split 500 --quiet ||
	fail "--layers 020,010"
$CKPT cat "$work/zeros" run.json | grep -q '"layers": "20,10"' ||
	fail "run.json layers: $($CKPT cat "$work/zeros" run.json | grep layers)"
$TRAIN --store "$work/zeros" --resume --layers 20,0010 --epochs 2 --quiet || fail "resume with --layers 20,0010"
$TRAIN --store "$work/zeros" --resume --layers 20,11 --epochs 3 --quiet 2>"$work/err" &&
	fail "resume with another architecture worked"
grep -q "architecture is --layers 20,10, not 20,11" "$work/err" || fail "another architecture: $(cat "$work/err")"
echo "ok: --layers sizes are numbers (leading zeros are the same architecture)"

# --resume --keep-last 0 keeps every checkpoint: the run's keep-top goes with it (a keep-top
# without keep-last is refused everywhere, and the resume failed applying it)
$TRAIN --store "$work/keepall" --data synthetic --layers 784,8,10 --epochs 2 --keep-last 2 --keep-top 1 \
	--val-split 500 --quiet || fail "a run with --keep-last 2 --keep-top 1"
$TRAIN --store "$work/keepall" --resume --keep-last 0 --epochs 3 --quiet 2>"$work/err" ||
	fail "--resume --keep-last 0: $(cat "$work/err")"
# one note says the stored keep-top goes (ckpt gc --keep-last 0 says the same)
[ "$(cat "$work/err")" = "ckpt-train: note: keep-last 0 keeps every checkpoint; the store's keep-top 1 no longer applies" ] ||
	fail "--resume --keep-last 0: wanted one note on the dropped keep-top: $(cat "$work/err")"
[ "$($CKPT info "$work/keepall" | grep '^keep-')" = "$(printf 'keep-last: 0\nkeep-top: 0')" ] ||
	fail "retention after --resume --keep-last 0: $($CKPT info "$work/keepall" | grep keep)"
echo "ok: --resume --keep-last 0 keeps every checkpoint"
$TRAIN --store "$work/keepall" --resume --keep-last 0 --keep-top 2 --epochs 4 --quiet 2>"$work/err"
rc=$?
[ $rc -eq 2 ] && grep -q "no effect without --keep-last" "$work/err" ||
	fail "--resume --keep-last 0 --keep-top 2: exit $rc (a usage error is 2): $(cat "$work/err")"

# --resume EPOCH without --epochs goes on to the run's latest target (the newest checkpoint's),
# not to the older one recorded at EPOCH: 1 epoch, resumed to 4, then --resume 2 retrains 3..4
$TRAIN --store "$work/target" --data synthetic --layers 784,16,10 --epochs 1 --val-split 500 --quiet ||
	fail "a 1-epoch run"
$TRAIN --store "$work/target" --resume --epochs 4 --quiet || fail "resume to 4"
$TRAIN --store "$work/target" --resume 2 >"$work/out" 2>"$work/err" || fail "--resume 2: $(cat "$work/err")"
grep -q "^resuming .* from epoch 2 (step [0-9]*) to epoch 4$" "$work/out" && grep -q "^epoch 4/4 " "$work/out" ||
	fail "--resume 2 without --epochs did not go on to epoch 4: $(cat "$work/out")"
[ "$(cat "$work/err")" = "ckpt-train: note: resuming from epoch 2: stored epochs 3..4 of the earlier run are replaced as they are trained again" ] ||
	fail "--resume 2 without --epochs: stderr $(cat "$work/err")"
# an explicit --epochs still wins, and the stored epoch 4 stays with its warning
$TRAIN --store "$work/target" --resume 2 --epochs 3 --quiet 2>"$work/err" || fail "--resume 2 --epochs 3"
grep -q "warning: resuming from epoch 2; epoch 4 of the earlier run stays" "$work/err" ||
	fail "--resume 2 --epochs 3: $(cat "$work/err")"
# the latest target is the newest commit's (by time, as the mount's `latest`), not the highest
# epoch's: after --epochs 10, --resume 2 --epochs 3 leaves epochs 4..10 of the first run, yet
# epoch 3 is the newest commit, so --resume 3 aims for 3 (it went on to 10)
$TRAIN --store "$work/newest" --data synthetic --layers 784,16,10 --epochs 10 --val-split 500 \
	--quiet || fail "a 10-epoch run"
$TRAIN --store "$work/newest" --resume 2 --epochs 3 --quiet 2>/dev/null || fail "--resume 2 --epochs 3"
$TRAIN --store "$work/newest" --resume 3 >"$work/out" 2>"$work/err"
rc=$?
[ $rc -eq 0 ] && grep -q "^resuming .* from epoch 3 (step [0-9]*) to epoch 3$" "$work/out" &&
	grep -q "^nothing to do: epoch 3 already reached" "$work/out" ||
	fail "--resume 3 after --resume 2 --epochs 3: exit $rc: $(cat "$work/out" "$work/err")"
echo "ok: --resume EPOCH without --epochs goes on to the run's latest target"
