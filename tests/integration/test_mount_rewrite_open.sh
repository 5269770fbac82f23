#!/usr/bin/env bash
# tests/integration/test_mount_rewrite_open.sh - a run resumed from an earlier checkpoint commits
# an epoch again under the same inode numbers while files of the old one are open. The kernel's
# page cache belongs to the inode, shared by every open: an old descriptor must go on reading
# the old epoch's bytes (the snapshot it was opened on), and every open made after the rewrite
# the new bytes, whichever reads first; never one's bytes through the other (no error would say so).
set -uo pipefail
. "$(dirname "$0")/mount_lib.sh"
require_fuse
trainer_usable || fail "build/bin/ckpt-train is missing or has no synthetic data (run make)"

store=$TMP/store mnt=$TMP/mnt E=epoch-0003
files="checkpoint.pt model.safetensors model/fc1.weight.npy"
make_store "$store" 3 && mount_store "$store" "$mnt"

# same_bytes WHAT WANT GOT
same_bytes() {
	cmp -s "$2" "$3" || fail "$1: $(stat -c %s "$3") bytes that differ from ckpt cat's $(stat -c %s "$2")"
}
# fd_reads FD WHAT WANT: descriptor FD reads to its end the bytes of file WANT
fd_reads() {
	cat <&"$1" >"$TMP/got$1" || fail "$2: read error"
	same_bytes "$2" "$3" "$TMP/got$1"
}

for round in 1 2 3 4; do
	for f in $files; do
		"$BIN/ckpt" cat "$store" "$E/$f" >"$TMP/old.${f//\//_}" || fail "ckpt cat $E/$f"
	done
	# the old epoch's files are open (one of them read once, so the cache holds its pages)
	exec 7<"$mnt/$E/checkpoint.pt" 9<"$mnt/$E/model.safetensors" 6<"$mnt/$E/model/fc1.weight.npy"
	[ $((round % 2)) = 1 ] && cat "$mnt/$E/checkpoint.pt" "$mnt/$E/model.safetensors" >/dev/null
	sleep 1.1 # the rewrite's commit time differs in whole seconds too
	threads=$((round % 2 + 1))
	"$BIN/ckpt-train" --store "$store" --data synthetic --resume $((round % 2 + 1)) --epochs 3 \
		--threads "$threads" --quiet >"$TMP/resume.log" 2>&1 ||
		fail "round $round: ckpt-train --resume: $(tail -n 3 "$TMP/resume.log")"
	for f in $files; do
		"$BIN/ckpt" cat "$store" "$E/$f" >"$TMP/new.${f//\//_}" || fail "ckpt cat $E/$f"
	done
	cmp -s "$TMP/old.checkpoint.pt" "$TMP/new.checkpoint.pt" && fail "round $round: the rewrite left checkpoint.pt as it was"
	echo "round $round: sizes $(for f in $files; do printf "%s->%s " "$(stat -c %s "$TMP/old.${f//\//_}")" "$(stat -c %s "$TMP/new.${f//\//_}")"; done)"
	sleep 1.2 # the watcher has seen the rewrite
	# (a) a new open first, then the old descriptor reads: the new open must not get its bytes
	exec 8<"$mnt/$E/checkpoint.pt"
	fd_reads 7 "round $round: old descriptor of $E/checkpoint.pt (new open made, read after)" \
		"$TMP/old.checkpoint.pt"
	fd_reads 8 "round $round: descriptor of $E/checkpoint.pt opened after the rewrite" \
		"$TMP/new.checkpoint.pt"
	# (b) new readers fill the cache first, then the old descriptors read
	cat "$mnt/$E/model.safetensors" >"$TMP/gotpath" || fail "read $E/model.safetensors"
	same_bytes "round $round: $E/model.safetensors opened after the rewrite, old one open" \
		"$TMP/new.model.safetensors" "$TMP/gotpath"
	"$PY" -c 'import sys; sys.stdout.buffer.write(open(sys.argv[1], "rb").read())' \
		"$mnt/$E/model/fc1.weight.npy" >"$TMP/gotpath" || fail "read $E/model/fc1.weight.npy"
	same_bytes "round $round: $E/model/fc1.weight.npy opened after the rewrite, old one open" \
		"$TMP/new.model_fc1.weight.npy" "$TMP/gotpath"
	fd_reads 9 "round $round: old descriptor of $E/model.safetensors (read after a new reader)" \
		"$TMP/old.model.safetensors"
	fd_reads 6 "round $round: old descriptor of $E/model/fc1.weight.npy (read after a new reader)" \
		"$TMP/old.model_fc1.weight.npy"
	exec 6<&- 7<&- 8<&- 9<&-
	sleep 1
	# once the old descriptors are closed, every new open, however it reads, gets the new bytes
	for f in $files; do
		cat "$mnt/$E/$f" >"$TMP/gotpath" || fail "read $E/$f"
		same_bytes "round $round: $E/$f after the old descriptors were closed" "$TMP/new.${f//\//_}" "$TMP/gotpath"
		[ "$(stat -c %s "$mnt/$E/$f")" = "$(stat -c %s "$TMP/new.${f//\//_}")" ] ||
			fail "round $round: $E/$f: st_size $(stat -c %s "$mnt/$E/$f"), the file has $(stat -c %s "$TMP/new.${f//\//_}")"
	done
	"$PY" -c 'import mmap, sys
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "rb") as g:
    sys.exit(0 if mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)[:] == g.read() else 1)' \
		"$mnt/$E/model/fc1.weight.npy" "$TMP/new.model_fc1.weight.npy" ||
		fail "round $round: an mmap of $E/model/fc1.weight.npy gives other bytes than ckpt cat"
done

# stat_becomes PATH SIZE WHAT: st_size of PATH reaches SIZE (the watcher polls every 0.5 s; a
# loaded machine gets a generous deadline)
stat_becomes() {
	local deadline=$((SECONDS + 30))
	local t0=$SECONDS
	until [ "$(stat -c %s "$1")" = "$2" ]; do
		[ $SECONDS -lt $deadline ] || fail "$3: st_size stays $(stat -c %s "$1"), the file has $2"
		sleep 0.1
	done
	echo "$3: st_size right after $((SECONDS - t0)) s"
}

unmount_store "$mnt"

# The old descriptor is closed before any other open: the rewrite's new size and bytes must show
# all the same, while it is open and after. A run on a CSV file resumed with --data naming the
# same file by a 150-byte longer path, then by the short one again, makes checkpoint.pt longer,
# then shorter (the path is in its 'extra'; a difference of a few bytes could vanish in the zip's
# 64-byte alignment).
mkdir -p "$TMP/csv" || fail "mkdir"
awk 'BEGIN { srand(1); for (i = 0; i < 300; i++) { printf "%d", i % 3
	for (j = 0; j < 8; j++) printf ",%d", int(rand() * 256); printf "\n" } }' >"$TMP/csv/train.csv" ||
	fail "writing train.csv"
long=$TMP/csv/$(printf 'x%.0s' {1..150}).csv
cp "$TMP/csv/train.csv" "$long" || fail "cp"
store=$TMP/csvstore mnt=$TMP/csvmnt
"$BIN/ckpt-train" --store "$store" --data "$TMP/csv/train.csv" --layers 8,4,3 --val-split 50 \
	--epochs 3 --threads 1 --quiet >"$TMP/train.log" 2>&1 || fail "ckpt-train on a CSV: $(tail -n 3 "$TMP/train.log")"
mount_store "$store" "$mnt"
for step in "$long no" "$TMP/csv/train.csv no" "$long yes" "$TMP/csv/train.csv yes"; do
	read -r data read_old <<<"$step"
	"$BIN/ckpt" cat "$store" "$E/checkpoint.pt" >"$TMP/old.pt" || fail "ckpt cat"
	exec 7<"$mnt/$E/checkpoint.pt"
	[ $read_old = yes ] && cat "$mnt/$E/checkpoint.pt" >/dev/null
	sleep 1.1
	"$BIN/ckpt-train" --store "$store" --data "$data" --resume 2 --threads 1 --quiet \
		>"$TMP/resume.log" 2>&1 || fail "--data ${data##*/}: ckpt-train --resume: $(tail -n 3 "$TMP/resume.log")"
	"$BIN/ckpt" cat "$store" "$E/checkpoint.pt" >"$TMP/new.pt" || fail "ckpt cat"
	what="--data of ${#data} bytes, old descriptor read: $read_old"
	old_size=$(stat -c %s "$TMP/old.pt") new_size=$(stat -c %s "$TMP/new.pt")
	[ "$old_size" != "$new_size" ] || fail "$what: checkpoint.pt kept its size $old_size"
	echo "$what: checkpoint.pt $old_size -> $new_size bytes"
	stat_becomes "$mnt/$E/checkpoint.pt" "$new_size" "$what: old descriptor open"
	if [ $read_old = yes ]; then
		cat "$mnt/$E/checkpoint.pt" >"$TMP/gotpath" || fail "$what: read"
		same_bytes "$what: $E/checkpoint.pt read while the old one is open" "$TMP/new.pt" "$TMP/gotpath"
		# the old descriptor reads its bytes, and leaves the path's size alone
		fd_reads 7 "$what: old descriptor" "$TMP/old.pt"
		[ "$(stat -c %s "$mnt/$E/checkpoint.pt")" = "$new_size" ] ||
			fail "$what: st_size $(stat -c %s "$mnt/$E/checkpoint.pt") once the old descriptor read to its end"
	fi
	exec 7<&-
	stat_becomes "$mnt/$E/checkpoint.pt" "$new_size" "$what: old descriptor closed"
	cat "$mnt/$E/checkpoint.pt" >"$TMP/gotpath" || fail "$what: read"
	same_bytes "$what: $E/checkpoint.pt once the old descriptor was closed" "$TMP/new.pt" "$TMP/gotpath"
done
unmount_store "$mnt"
echo "test_mount_rewrite_open: ok"
