#!/usr/bin/env bash
# tests/integration/test_train_resume.sh - N epochs straight vs k epochs + `--resume` to N give
# byte-identical checkpoints (`ckpt show` of the last epoch) for SGD and Adam; --resume best /
# EPOCH continue from the named checkpoint; a finished run resumed to the same --epochs is a no-op.
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
