#!/usr/bin/env bash
# tests/integration/test_train_failed_start.sh - a run that fails before its first checkpoint
# (here: the loss becomes NaN) leaves no store behind: the --store directory it created is
# removed again (an empty directory given as --store stays, empty), so the same command with a
# corrected setting (a lower --lr, as the message suggests) starts the run instead of being
# refused for "a run with other settings". A failure after checkpoints exist keeps them. A run
# that needs more memory than is available is refused before it allocates; an allocation that
# fails anyway is one error line and leaves no store.
# Runs that end in well under a second are bounded by timeout -k 1 10 (a KILL a second after
# the TERM, as a hung run may ignore it); runs that train, by timeout -k 1 60.
. "$(dirname "$0")/lib.sh"
need_built "$TRAIN" "$CKPT"
common=(--data synthetic --layers 24,16,4 --val-split 2000 --batch-size 50 --threads 1 --no-sync --quiet)

store="$WORK/new store"
$TRAIN --store "$store" --epochs 2 --lr 1e30 "${common[@]}" 2>"$WORK/err"
rc=$?
[ "$rc" -eq 1 ] || fail "NaN loss: exit $rc, want 1"
[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "not one error line: $(cat "$WORK/err")"
grep -q "training loss became NaN in epoch 1.*nothing was saved" "$WORK/err" ||
	fail "unclear message: $(cat "$WORK/err")"
[ ! -e "$store" ] || fail "the failed run left $store behind: $(ls -la "$store")"
$TRAIN --store "$store" --epochs 2 --lr 0.1 "${common[@]}" ||
	fail "the same --store with a lower --lr was refused"
[ "$($CKPT info "$store" | sed -n 's/^checkpoints: //p')" = 2 ] || fail "rerun did not write 2 epochs"

mkdir "$WORK/empty"
$TRAIN --store "$WORK/empty" --epochs 2 --lr 1e30 "${common[@]}" 2>/dev/null &&
	fail "NaN loss in an empty directory: exit 0"
[ -d "$WORK/empty" ] || fail "the empty --store directory given was removed"
[ -z "$(ls -A "$WORK/empty")" ] || fail "files left in the empty --store: $(ls -A "$WORK/empty")"

# a store with checkpoints is never removed, even if the failure comes before a new commit
before=$($CKPT show "$store" latest) || fail "ckpt show"
$TRAIN --store "$store" --epochs 5 --lr 1e30 "${common[@]}" 2>/dev/null &&
	fail "reusing a store with checkpoints: exit 0"
[ "$($CKPT show "$store" latest)" = "$before" ] || fail "the existing store changed"
# a store left empty by a killed run: other settings are refused naming the setting, the
# same settings reuse it
CKPT_TRAIN_TEST_PERSIST_DELAY_MS=10000 $TRAIN --store "$WORK/killed" --epochs 1 "${common[@]}" &
kpid=$!
wait_until 20 $kpid test -e "$WORK/killed/data.mdb"
sleep 0.2
kill -KILL $kpid
wait $kpid 2>/dev/null
$TRAIN --store "$WORK/killed" --epochs 1 --seed 7 "${common[@]}" 2>"$WORK/err" &&
	fail "an empty store of another --seed was reused"
grep -q "was created for a run with other settings (--seed 0 there, 7 here); remove it" "$WORK/err" ||
	fail "message: $(cat "$WORK/err")"
# every setting that differs is named, each with both values
$TRAIN --store "$WORK/killed" --epochs 1 "${common[@]}" --seed 7 --lr 0.2 --layers 24,8,4 2>"$WORK/err" &&
	fail "an empty store of other settings was reused"
grep -q "other settings (--layers 24,16,4 there, 24,8,4 here; --seed 0 there, 7 here; --lr 0.1 there, 0.2 here); remove it" "$WORK/err" ||
	fail "message: $(cat "$WORK/err")"
# hyper-parameters: the settings that differ, each with both values (every digit that tells
# them apart), not the whole run.json text
$TRAIN --store "$WORK/killed" --epochs 1 --lr 0.10000001 --momentum 0.8 "${common[@]}" 2>"$WORK/err" &&
	fail "an empty store of another --lr was reused"
grep -q "was created for a run with other settings (--lr 0.1 there, 0.10000001 here; --momentum 0.9 there, 0.8 here); remove it" "$WORK/err" ||
	fail "message: $(cat "$WORK/err")"
$TRAIN --store "$WORK/killed" --epochs 1 "${common[@]}" || fail "same settings on the empty store"
echo "ok: a run that saved nothing leaves no store; existing stores stay"

# a model larger than the memory available is refused before anything is allocated (not
# OOM-killed), naming what it needs and what is available; each 65536 x 65536 layer needs
# about 112 GiB with its gradients, momentum and staging buffers
avail_kb=$(sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo)
layers=16,65536
for _ in $(seq 1 $((avail_kb / (100 << 20) + 1))); do layers=$layers,65536; done
small=(--data synthetic --val-split 2000 --threads 1 --no-sync --quiet)
start=$(date +%s%N)
timeout -k 1 10 $TRAIN --store "$WORK/big" --layers "$layers,4" "${small[@]}" 2>"$WORK/err"
rc=$?
ms=$((($(date +%s%N) - start) / 1000000))
[ $rc -eq 1 ] || fail "a model above MemAvailable: exit $rc, want 1: $(cat "$WORK/err")"
[ "$(wc -l <"$WORK/err")" -eq 1 ] &&
	grep -q "error: not enough memory for this run: it needs .* GiB more (parameters .*) and .* is available (" "$WORK/err" ||
	fail "a model above MemAvailable: $(cat "$WORK/err")"
[ $ms -lt 5000 ] || fail "the refusal took $ms ms: it allocated first"
[ ! -e "$WORK/big" ] || fail "a refused run left a store"
# under ulimit -v: the check names the limit and the whole address space the run needs (training
# and the store's map: one raise of the limit is enough); past the check (the test knob), the allocation
# that fails is one clean error line, and no store is left
mid=(--layers 16,4096,4096,4 "${small[@]}")
(ulimit -v 400000 && exec timeout -k 1 10 $TRAIN --store "$WORK/mid" "${mid[@]}") 2>"$WORK/err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] &&
	grep -q "not enough address space for this run under ulimit -v: it needs .* for training .* for the store's map .* in all, and .* is left; raise it to ulimit -v [0-9]* (--layers 16,4096,4096,4" "$WORK/err" ||
	fail "ulimit -v: exit $rc: $(cat "$WORK/err")"
# the figure it gives is enough: at that limit the run trains (one epoch, to be quick)
(ulimit -v 400000 && exec $TRAIN --store "$WORK/mid" "${mid[@]}" --epochs 1) 2>"$WORK/err"
want=$(sed -n 's/.*raise it to ulimit -v \([0-9]*\).*/\1/p' "$WORK/err")
[ -n "$want" ] || fail "ulimit -v, one epoch: no limit named: $(cat "$WORK/err")"
(ulimit -v "$want" && exec timeout -k 1 60 $TRAIN --store "$WORK/mid" "${mid[@]}" --epochs 1) 2>"$WORK/err" ||
	fail "ulimit -v $want, the limit the refusal gave: $(cat "$WORK/err")"
rm -rf "$WORK/mid"
for v in 300000 400000 500000; do
	(ulimit -v $v && CKPT_TRAIN_TEST_NO_MEMORY_CHECK=1 exec timeout -k 1 10 $TRAIN --store "$WORK/mid" "${mid[@]}") 2>"$WORK/err"
	rc=$?
	[ $rc -eq 1 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] &&
		grep -q "^ckpt-train: error: out of memory \(allocating \(the model's buffers\|optimizer state\) (--layers 16,4096,4096,4, batches of up to 1024 rows)\|for the checkpoint staging buffers (2 x [0-9]* bytes of host memory)\)$" "$WORK/err" ||
		fail "ulimit -v $v past the check: exit $rc: $(cat "$WORK/err")"
	[ ! -e "$WORK/mid" ] || fail "ulimit -v $v: a failed allocation left a store"
done
# OpenBLAS's 128 MiB per-thread buffer is address space: a limit that leaves room for the model
# but not for it made OpenBLAS retry its allocation forever at full CPU, deaf to SIGTERM. Every
# limit now either trains or is refused in one line.
for v in $(seq 275000 25000 475000); do
	(ulimit -v $v && exec timeout -k 1 10 $TRAIN --store "$WORK/as" --data synthetic \
		--layers 784,64,10 --epochs 1 --threads 1 --quiet --no-sync) 2>"$WORK/err"
	rc=$?
	[ $rc -eq 0 ] || { [ $rc -eq 1 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ]; } ||
		fail "ulimit -v $v: exit $rc (124/137: it hung): $(cat "$WORK/err")"
	rm -rf "$WORK/as"
done
# the limit a refusal names is the same for the same run whatever limit it started under
# (OpenBLAS maps its buffer at start only when the limit allows it, a thread's malloc arena may
# or may not be mapped yet), and it is enough: at it the run trains, or is refused once more
# with a limit at which it trains
as_run() {
	(ulimit -v "$1" && exec timeout -k 1 60 $TRAIN --store "$WORK/scan" --data synthetic \
		--layers 784,64,10 --epochs 1 --threads "$2" --quiet --no-sync) 2>"$WORK/err"
	local rc=$?
	rm -rf "$WORK/scan"
	return $rc
}
for threads in 1 2; do
	named=
	for v in 100000 300000 400000 700000; do
		as_run $v $threads && continue
		want=$(sed -n 's/.*raise it to ulimit -v \([0-9]*\).*/\1/p' "$WORK/err")
		[ -n "$want" ] || continue # too tight for the data set itself: no limit named
		# the same run names the same limit, give or take what the libraries map at start
		if [ -n "$named" ] && { [ $((want - named)) -gt 64 ] || [ $((named - want)) -gt 64 ]; }; then
			fail "--threads $threads: ulimit -v $v names $want, another limit named $named"
		fi
		named=$want
		as_run "$want" $threads && continue
		again=$(sed -n 's/.*raise it to ulimit -v \([0-9]*\).*/\1/p' "$WORK/err")
		[ -n "$again" ] && as_run "$again" $threads ||
			fail "--threads $threads: ulimit -v $v named $want, which did not train: $(cat "$WORK/err")"
	done
done
# lower still, a run refused for memory (the check, or building the data set) said so and then
# hung in exit(): OpenBLAS's destructor joined a worker that retried its refused buffer forever
for v in 60000 90000 120000 180000 240000; do
	(ulimit -v $v && exec timeout -k 1 10 $TRAIN --store "$WORK/as" --data synthetic \
		--layers 784,64,10 --epochs 1 --threads 1 --quiet --no-sync) 2>"$WORK/err"
	rc=$?
	[ $rc -eq 1 ] && grep -q "^ckpt-train: error: \(out of memory\|not enough address space\|not enough memory\)" "$WORK/err" ||
		fail "ulimit -v $v: exit $rc (124/137: it hung): $(cat "$WORK/err")"
	[ ! -e "$WORK/as" ] || fail "ulimit -v $v: a refused run left a store"
done
# the store's map is address space too: a first commit whose map cannot grow under ulimit -v
# is one error line and leaves no store (it used to crash inside LMDB, exit 139); the check
# refuses such a run before training
map=(--layers 16,8192,3072,4 --epochs 1 --data synthetic --val-split 9900 --batch-size 100
	--threads 1 --no-sync --quiet)
(ulimit -v 1200000 && CKPT_TRAIN_TEST_NO_MEMORY_CHECK=1 exec timeout -k 1 60 $TRAIN --store "$WORK/map" "${map[@]}") 2>"$WORK/err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] &&
	grep -q "^ckpt-train: error: cannot commit epoch 1 to .*growing the map to [0-9]* bytes: Cannot allocate memory)$" "$WORK/err" ||
	fail "a map that cannot grow: exit $rc, want 1: $(cat "$WORK/err")"
[ ! -e "$WORK/map" ] || fail "a run that committed nothing left a store"
# (room for training, not for the map as well)
(ulimit -v 1400000 && exec timeout -k 1 10 $TRAIN --store "$WORK/map" "${map[@]}") 2>"$WORK/err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] &&
	grep -q "error: not enough address space for this run under ulimit -v: .* for the store's map (1 checkpoint of" "$WORK/err" ||
	fail "the map under ulimit -v was not checked: exit $rc: $(cat "$WORK/err")"
# no room even for training: the message does not suggest keeping fewer checkpoints
(ulimit -v 1000000 && exec timeout -k 1 10 $TRAIN --store "$WORK/map" "${map[@]}") 2>"$WORK/err"
rc=$?
[ $rc -eq 1 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] &&
	grep -q "error: not enough .* for this run.*; raise it to ulimit -v [0-9]* (--layers" "$WORK/err" &&
	! grep -q -- "--keep-last" "$WORK/err" ||
	fail "training alone above ulimit -v: exit $rc: $(cat "$WORK/err")"
[ ! -e "$WORK/map" ] || fail "a refused run left a store"
# a refused --resume leaves the store as it found it: no lock.mdb where there was none
$TRAIN --store "$WORK/nlsrc" --data synthetic --layers 16,8,4 --val-split 9000 --epochs 1 \
	--threads 1 --quiet --no-sync || fail "the run to copy"
mkdir "$WORK/nl" && cp "$WORK/nlsrc/data.mdb" "$WORK/nl/" || fail "cannot copy the store"
$TRAIN --store "$WORK/nl" --resume --lr 0.5 2>"$WORK/err"
rc=$?
[ $rc -eq 1 ] && grep -q "refusing to resume: --lr 0.5 differs" "$WORK/err" ||
	fail "resume with other settings: exit $rc: $(cat "$WORK/err")"
[ ! -e "$WORK/nl/lock.mdb" ] || fail "a refused resume created lock.mdb"
# a reader without lock.mdb (a copy of the store) keeps a trainer out for as long as it reads:
# the refusal names it by pid and command, from /proc/locks
$TRAIN --store "$WORK/rdsrc" --data synthetic --layers 16,4096,4 --val-split 9000 --epochs 1 \
	--threads 1 --quiet --no-sync || fail "the run to copy"
mkdir "$WORK/rd" && cp "$WORK/rdsrc/data.mdb" "$WORK/rd/" || fail "cannot copy the store"
"$CKPT" cat "$WORK/rd" latest/checkpoint.pt 2>/dev/null | (sleep 3; cat >/dev/null) &
reader_pipe=$!
wait_until 20 "" pgrep -P $$ -x ckpt >/dev/null || fail "the slowed reader did not start"
reader=$(pgrep -P $$ -x ckpt)
sleep 0.3
$TRAIN --store "$WORK/rd" --resume --epochs 2 2>"$WORK/err"
rc=$?
wait "$reader_pipe"
[ $rc -eq 1 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] &&
	grep -q "store $WORK/rd is being read by pid $reader (ckpt) without lock.mdb" "$WORK/err" ||
	fail "a trainer under a lockless reader: exit $rc: $(cat "$WORK/err")"
[ "$(ls "$WORK/rd")" = data.mdb ] || fail "a refused resume left files: $(ls "$WORK/rd")"
# a writer on a store it cannot write names the file (root writes anything: run as nobody)
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	chmod a+rx "$WORK" && chmod -R a-w "$WORK/rd" || fail "cannot make the store read-only"
	nobody=(setpriv --reuid 65534 --regid 65534 --clear-groups)
	"${nobody[@]}" $TRAIN --store "$WORK/rd" --resume --epochs 2 2>"$WORK/err"
	rc=$?
	[ $rc -eq 1 ] && [ "$(wc -l <"$WORK/err")" -eq 1 ] &&
		grep -qxF "ckpt-train: error: cannot train into store $WORK/rd: $WORK/rd/data.mdb is not writable (Permission denied); training needs write access to the store" "$WORK/err" ||
		fail "a trainer on a store it cannot write: exit $rc: $(cat "$WORK/err")"
	"${nobody[@]}" "$CKPT" gc "$WORK/rd" --keep-last 1 2>"$WORK/err"
	rc=$?
	[ $rc -eq 1 ] && grep -qF "$WORK/rd/data.mdb is not writable (Permission denied)" "$WORK/err" ||
		fail "gc on a store it cannot write: exit $rc: $(cat "$WORK/err")"
	[ "$(ls "$WORK/rd")" = data.mdb ] || fail "a refused writer left files: $(ls "$WORK/rd")"
	chmod -R u+w "$WORK/rd"
else
	echo "skip: a store nobody can write (needs root and setpriv)"
fi
echo "ok: a run that cannot fit in memory is refused before it allocates, or fails cleanly"
