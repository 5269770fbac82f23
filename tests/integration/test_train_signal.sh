#!/usr/bin/env bash
# tests/integration/test_train_signal.sh - SIGTERM/SIGINT/SIGHUP during training stop at a
# batch boundary: exit 143/130/129, a message saying where to resume, no partial epoch, a store that
# verifies, and a resume that goes on from the last finished epoch.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
work=$WORK
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	lib_cleanup
}
trap cleanup EXIT

for sig in TERM INT HUP; do
	store="$work/store $sig it's" # the printed command quotes it for the shell
	# a newline in the path: the message stays one line, the command uses $'...' quoting
	[ $sig = HUP ] && store+=$'\nnext line'
	$TRAIN --store "$store" --data synthetic --layers 784,256,128,10 --val-split 1000 \
		--batch-size 32 --epochs 1000 --threads 1 >"$work/out" 2>"$work/err" &
	pid=$!
	wait_until 30 "$pid" grep -q '^epoch 2/' "$work/out" ||
		{ cat "$work/err"; fail "training did not reach epoch 2"; }
	kill -$sig "$pid"
	wait "$pid"
	rc=$?
	pid=
	case $sig in TERM) want=143 ;; INT) want=130 ;; HUP) want=129 ;; esac
	[ $rc -eq "$want" ] || { cat "$work/err"; fail "SIG$sig: exit $rc, expected $want"; }
	grep -q "interrupted by SIG$sig" "$work/err" || fail "no interruption message: $(cat "$work/err")"
	grep -q -- "--resume" "$work/err" || fail "message does not say how to resume"
	[ "$(wc -l <"$work/err")" -eq 1 ] || fail "stderr is not one line: $(cat "$work/err")"
	# the message names the last committed epoch (a commit may land just before the signal)
	last=$(sed -n 's/.*the store ends at epoch \([0-9]*\).*/\1/p' "$work/err")
	[ -n "$last" ] && [ "$last" -ge 2 ] || fail "message does not name the last epoch: $(cat "$work/err")"
	$CKPT verify "$store" >/dev/null || fail "ckpt verify after SIG$sig"
	info=$($CKPT info "$store") || fail "ckpt info"
	grep -q "^checkpoints: $last\$" <<<"$info" || fail "store has not exactly $last checkpoints: $info"
	grep -q "^latest: epoch-$(printf %04d "$last")\$" <<<"$info" || fail "latest is not $last: $info"
	# the command the message prints works when pasted into a shell (a later --epochs wins)
	cmd=$(sed -n 's/.*continue with: //p' "$work/err")
	[[ $cmd == "ckpt-train --store "*" --resume --epochs 1000" ]] || fail "no command: $(cat "$work/err")"
	ckpt-train() { "$TRAIN" "$@"; }
	eval "$cmd --epochs $((last + 1)) --threads 1 --quiet" || fail "resume after SIG$sig: $cmd"
	$CKPT info "$store" | grep -q "^latest: epoch-$(printf %04d $((last + 1)))\$" ||
		fail "resume did not add epoch $((last + 1))"
	echo "ok: SIG$sig after $last epochs leaves a consistent store"
done

# on a terminal, the stop message starts on a cleared line, not after the progress line, and
# the progress line fits the terminal's width
python3 - "$TRAIN" "$work/tty" <<'PYEOF' || fail "SIGINT on a terminal"
import fcntl, os, pty, signal, struct, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    # a narrow terminal: the progress line is cut to fit (a wrapped one piles up)
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    os.execv(sys.argv[1], [sys.argv[1], "--store", sys.argv[2], "--data", "synthetic",
                           "--layers", "784,256,128,10", "--val-split", "1000",
                           "--batch-size", "1", "--epochs", "1000", "--threads", "1",
                           "--no-sync"])  # batches of 1: the signal lands mid-epoch
out, start = b"", time.time()
while b"batch " not in out and time.time() - start < 30:
    out += os.read(fd, 4096)
os.kill(pid, signal.SIGINT)
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    out += data
os.waitpid(pid, 0)
at = out.find(b"ckpt-train: interrupted by SIGINT")
assert at > 0, out[-300:]
assert out[:at].endswith(b"\r\x1b[K"), out[max(0, at - 120):at + 40]
progress = [seg.replace(b"\x1b[K", b"") for seg in out[:at].split(b"\r")
            if seg.startswith(b"epoch ") and b"batch " in seg]
assert progress, out[:300]
assert max(len(seg) for seg in progress) <= 39, [seg for seg in progress if len(seg) > 39][:3]
PYEOF

# a signal before the first checkpoint (epoch 1 takes seconds at --batch-size 1; the store is
# created just before it starts): the store the run created is removed again
for sig in HUP INT; do
	store="$work/early-$sig"
	$TRAIN --store "$store" --data synthetic --layers 784,256,128,10 --val-split 1000 \
		--batch-size 1 --epochs 2 --threads 1 --no-sync >"$work/out" 2>"$work/err" &
	pid=$!
	wait_until 20 "$pid" test -e "$store/data.mdb"
	kill -$sig "$pid"
	wait "$pid"
	rc=$?
	pid=
	case $sig in INT) want=130 ;; HUP) want=129 ;; esac
	[ $rc -eq "$want" ] || { cat "$work/err"; fail "early SIG$sig: exit $rc, expected $want"; }
	grep -q "interrupted by SIG$sig \\(in epoch 1 (batch [1-9]\\|before epoch 1 began\\).*nothing was saved" "$work/err" ||
		fail "early SIG$sig: $(cat "$work/err")"
	[ ! -e "$store" ] || fail "early SIG$sig left the store behind: $(ls -A "$store")"
done
# nohup: an ignored SIGHUP stays ignored, the run goes on
store="$work/nohup"
(trap '' HUP; CKPT_TRAIN_TEST_PERSIST_DELAY_MS=700 exec $TRAIN --store "$store" --data synthetic --layers 24,16,4 --val-split 1000 \
	--batch-size 50 --epochs 2 --threads 1 --no-sync --quiet 2>"$work/err") &
pid=$!
sleep 0.3
kill -HUP "$pid" || fail "the nohup run ended before SIGHUP was sent"
wait "$pid"
rc=$?
pid=
[ $rc -eq 0 ] || fail "SIGHUP under nohup: exit $rc: $(cat "$work/err")"
$CKPT info "$store" | grep -q '^latest: epoch-0002$' || fail "the nohup run did not finish"
echo "ok: a signal before the first checkpoint removes the new store; nohup ignores SIGHUP"

# a signal after an epoch's last batch (while it is evaluated; the test knob holds that window
# open 5 s, and epoch 1 takes about 0.5 s) costs nothing: the epoch is committed and the run
# stops before the next one
store="$work/after-last-batch"
CKPT_TRAIN_TEST_EVAL_DELAY_MS=5000 $TRAIN --store "$store" --data synthetic --layers 784,16,10 \
	--val-split 1000 --epochs 3 --threads 1 >"$work/out" 2>"$work/err" &
pid=$!
sleep 2.5
kill -INT "$pid"
wait "$pid"
rc=$?
pid=
[ $rc -eq 130 ] || fail "SIGINT after the last batch: exit $rc: $(cat "$work/err")"
grep -q "interrupted by SIGINT before epoch 2 began; the store ends at epoch 1" "$work/err" ||
	fail "SIGINT after the last batch of epoch 1: $(cat "$work/err")"
grep -q '^epoch 1/3' "$work/out" || fail "no line for the committed epoch 1: $(cat "$work/out")"
$CKPT verify "$store" >/dev/null || fail "ckpt verify after SIGINT after the last batch"
echo "ok: a signal after an epoch's last batch commits that epoch, then stops"
