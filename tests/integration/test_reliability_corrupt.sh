#!/usr/bin/env bash
# tests/integration/test_reliability_corrupt.sh - damaged stores: the short version of
# tests/reliability/corruption.sh (damaged tensors named by ckpt verify and EIO through the
# mount, 6 rounds of random bit flips, truncated/garbage data.mdb, no lock.mdb, newer schema),
# then damaged metadata records of a real store, found through LMDB (build/tests/tools/
# record_offset): a byte changed in a checkpoint record fails that epoch, with one clear line,
# in ckpt show/ls/cat/verify and the mount, while the other epochs read their exact bytes and
# the root still works (ls, ls -l, history.csv with an empty row, best/latest, rsync copying
# every other epoch and exiting 23, ckpt ls STORE); a
# damaged index record is rebuilt from its checkpoint record (readers see the right data, ckpt
# verify reports it); a damaged checkpoint deleted by gc leaves no blob behind; a damaged best record is rebuilt from the index (verify reports it); damaged run
# metadata refuses the store. A node size grown past the end of data.mdb fails only its epoch
# for readers and the mount (no SIGBUS), while ckpt gc, --compact and ckpt-train --resume refuse
# the file in one line and change nothing. A store without lock.mdb mounts without one appearing.
set -uo pipefail
cd "$(dirname "$0")/../.."
seed=${CORRUPT_SEED:-$(date +%s)}
bash tests/reliability/corruption.sh --rounds 6 --seed "$seed"
random_rc=$?

. tests/integration/mount_lib.sh
require_fuse
RANDOM=$seed
OFF=$TOOLS/record_offset
CKPT=$BIN/ckpt
[ -x "$OFF" ] || fail "build/tests/tools/record_offset is missing (make test builds it)"
failures=0
problem() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

pristine=$TMP/pristine
make_store "$pristine" 3
mkdir "$TMP/ref"
for e in 1 2 3; do
	"$CKPT" show "$pristine" $e >"$TMP/ref/show$e" || fail "ckpt show $e"
	"$CKPT" cat "$pristine" epoch-000$e/model.safetensors >"$TMP/ref/st$e" || fail "ckpt cat $e"
done

# damage DB KEY WHERE: a fresh copy of the pristine store in $TMP/damaged with one byte of the
# record changed: WHERE is first, last, middle or random; prints the record's offset and length
damage() {
	rm -rf "$TMP/damaged"
	cp -r "$pristine" "$TMP/damaged"
	local at len
	read -r at len < <("$OFF" "$TMP/damaged" "$1" "$2") || fail "record_offset $1 $2"
	case $3 in
	first) ;;
	last) at=$((at + len - 1)) ;;
	middle) at=$((at + len / 2)) ;;
	random) at=$((at + RANDOM % len)) ;;
	esac
	python3 - "$TMP/damaged/data.mdb" "$at" $((1 + RANDOM % 255)) <<'PY' || fail "flip"
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)[0]
    f.seek(int(sys.argv[2]))
    f.write(bytes([b ^ int(sys.argv[3])]))
PY
	echo "$1 $2 ($len bytes): byte $3 at $at"
}

# expect_fail PATTERN CMD...: exit 1, exactly one stderr line matching PATTERN
expect_fail() {
	local pat=$1
	shift
	"$@" >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	if [ $rc -ne 1 ] || [ "$(wc -l <"$TMP/err")" -ne 1 ] || ! grep -qE -- "$pat" "$TMP/err"; then
		problem "'${*#"$BIN/"}': exit $rc, stderr '$(head -c 300 "$TMP/err")', wanted one line matching '$pat'"
	fi
}

# expect_same EPOCH: ckpt show and the safetensors bytes of EPOCH are the pristine ones
expect_same() {
	"$CKPT" show "$TMP/damaged" "$1" >"$TMP/out" 2>"$TMP/err" && cmp -s "$TMP/out" "$TMP/ref/show$1" ||
		problem "ckpt show $1 differs or fails: $(head -c 300 "$TMP/err")"
	"$CKPT" cat "$TMP/damaged" "epoch-000$1/model.safetensors" 2>"$TMP/err" | cmp -s - "$TMP/ref/st$1" ||
		problem "ckpt cat epoch-000$1/model.safetensors differs or fails: $(head -c 300 "$TMP/err")"
}

# The root of a store with epoch 2's checkpoint record damaged, through the CLI: every entry
# listed, history.csv readable with an empty row for epoch 2.
check_damaged_root() {
	"$CKPT" ls "$TMP/damaged" >"$TMP/out" 2>"$TMP/err" || problem "ckpt ls STORE: $(cat "$TMP/err")"
	[ "$(tr '\n' ' ' <"$TMP/out")" = "run.json history.csv best latest epoch-0001 epoch-0002 epoch-0003 " ] ||
		problem "ckpt ls STORE listed: $(tr '\n' ' ' <"$TMP/out")"
	# as GNU ls: the damaged epoch named on stderr, exit 1, every entry listed, the damaged one
	# with '?' for what is unknown (d????????? ? ? epoch-0002)
	"$CKPT" ls -l "$TMP/damaged" >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	[ $rc -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "ls: epoch-0002: corrupt record" "$TMP/err" ||
		problem "ckpt ls -l STORE: exit $rc, stderr: $(cat "$TMP/err")"
	[ "$(wc -l <"$TMP/out")" -eq 7 ] && grep -q '^d????????? *? *? epoch-0002$' "$TMP/out" &&
		[ "$(grep -c '^d????????? ' "$TMP/out")" -eq 1 ] &&
		[ "$(sed 's/ -> .*//; s/.* //' "$TMP/out" | tr '\n' ' ')" = "run.json history.csv best latest epoch-0001 epoch-0002 epoch-0003 " ] ||
		problem "ckpt ls -l STORE: $(cat "$TMP/out")"
	"$CKPT" cat "$TMP/damaged" history.csv >"$TMP/history.cli" 2>"$TMP/err" ||
		problem "ckpt cat history.csv: $(cat "$TMP/err")"
	local fields
	fields=$(head -1 "$TMP/history.cli" | tr -cd , | wc -c)
	grep -qx "2$(printf ',%.0s' $(seq 1 "$fields"))" "$TMP/history.cli" ||
		problem "history.csv has no empty row for epoch 2: $(cat "$TMP/history.cli")"
	[ "$(grep -c '^[13],[0-9]' "$TMP/history.cli")" -eq 2 ] || problem "history.csv lost epochs 1 and 3"
}

# The same store mounted on $TMP/mnt: only epoch 2 fails (EIO), the rest is there.
check_damaged_mount() {
	local m=$TMP/mnt
	ls "$m" >"$TMP/out" 2>"$TMP/err" || problem "ls MOUNT: $(cat "$TMP/err")"
	grep -qx epoch-0002 "$TMP/out" && [ "$(wc -l <"$TMP/out")" -eq 7 ] || problem "ls MOUNT: $(cat "$TMP/out")"
	ls -l "$m" >"$TMP/out" 2>"$TMP/err"
	[ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "epoch-0002.*Input/output error" "$TMP/err" ||
		problem "ls -l MOUNT, wanted one EIO line for epoch-0002: $(cat "$TMP/err")"
	for f in history.csv run.json epoch-0001 epoch-0003 best latest; do
		grep -q " $f" "$TMP/out" || problem "ls -l MOUNT misses $f: $(cat "$TMP/out")"
	done
	[ "$(stat -c %s "$m/history.csv" 2>/dev/null)" = "$(stat -c %s "$TMP/history.cli")" ] ||
		problem "stat MOUNT/history.csv: not the size of the CLI's history.csv"
	cmp -s "$m/history.csv" "$TMP/history.cli" || problem "cat MOUNT/history.csv differs from ckpt cat's"
	[ "$(readlink "$m/latest")" = epoch-0003 ] || problem "readlink MOUNT/latest: $(readlink "$m/latest")"
	[ "$(readlink "$m/best")" = epoch-0003 ] || problem "readlink MOUNT/best: $(readlink "$m/best")"
	stat "$m/epoch-0002" >/dev/null 2>"$TMP/err" && problem "stat of the damaged epoch worked"
	grep -q "Input/output error" "$TMP/err" || problem "stat of the damaged epoch: $(cat "$TMP/err")"
	rm -rf "$TMP/copy"
	rsync -a "$m/" "$TMP/copy/" >"$TMP/out" 2>"$TMP/err"
	local rc=$?
	[ $rc -eq 23 ] || problem "rsync of the mount: exit $rc, wanted 23: $(cat "$TMP/err")"
	grep -q 'epoch-0002.*Input/output error' "$TMP/err" || problem "rsync did not name epoch-0002: $(cat "$TMP/err")"
	[ -e "$TMP/copy/epoch-0002" ] && problem "rsync copied something of the damaged epoch"
	diff -r "$m/epoch-0001" "$TMP/copy/epoch-0001" >/dev/null 2>&1 && diff -r "$m/epoch-0003" "$TMP/copy/epoch-0003" >/dev/null 2>&1 &&
		cmp -s "$TMP/copy/history.csv" "$TMP/history.cli" && cmp -s "$m/run.json" "$TMP/copy/run.json" ||
		problem "rsync's copy of the readable epochs differs"
}

# ---- a checkpoint record: first, last, middle and a random byte
for where in first last middle random random; do
	damage ckpt 2 $where
	expect_fail "show: checkpoint '2' of .* is damaged .*epoch 2: corrupt checkpoint record" "$CKPT" show "$TMP/damaged" 2
	expect_fail "epoch 2: corrupt checkpoint record" "$CKPT" ls "$TMP/damaged" epoch-0002
	expect_fail "epoch 2: corrupt checkpoint record" "$CKPT" cat "$TMP/damaged" epoch-0002/metrics.json
	expect_same 1
	expect_same 3
	"$CKPT" verify "$TMP/damaged" >"$TMP/out" 2>"$TMP/err" && problem "ckpt verify passed a damaged checkpoint record"
	grep -q "^ckpt: error: epoch-0002: bad checkpoint record" "$TMP/err" || problem "ckpt verify: $(cat "$TMP/err")"
	grep -qv "epoch-0002" "$TMP/err" && problem "ckpt verify blames other epochs: $(cat "$TMP/err")"
	# ckpt log: every other epoch listed, the damaged one named once on stderr, exit 1
	"$CKPT" log "$TMP/damaged" >"$TMP/out" 2>"$TMP/err" && problem "ckpt log passed a damaged checkpoint record"
	[ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "^ckpt: error: .*epoch-0002 (.*corrupt checkpoint record" "$TMP/err" ||
		problem "ckpt log, wanted one line naming epoch-0002: $(cat "$TMP/err")"
	grep -q "^epoch-0001 " "$TMP/out" && grep -q "^epoch-0003 " "$TMP/out" &&
		grep -q "^epoch-0002 .*damaged record" "$TMP/out" || problem "ckpt log lost rows: $(cat "$TMP/out")"
	if [ $where = middle ]; then
		check_damaged_root
		touch "$TMP/ckptfs.log"
		log_before=$(wc -l <"$TMP/ckptfs.log")
		mount_store "$TMP/damaged" "$TMP/mnt"
		cat "$TMP/mnt/epoch-0002/metrics.json" >/dev/null 2>&1 && problem "the mount read a damaged epoch"
		cmp -s "$TMP/mnt/epoch-0001/model.safetensors" "$TMP/ref/st1" || problem "mount: epoch 1 differs"
		cmp -s "$TMP/mnt/epoch-0003/model.safetensors" "$TMP/ref/st3" || problem "mount: epoch 3 differs"
		check_damaged_mount
		unmount_store "$TMP/mnt"
		tail -n +$((log_before + 1)) "$TMP/ckptfs.log" >"$TMP/mlog"
		[ "$(wc -l <"$TMP/mlog")" -eq 1 ] && grep -q "EIO: epoch-0002 cannot be shown: .*corrupt checkpoint record" "$TMP/mlog" ||
			problem "ckptfs log, wanted one line naming epoch-0002: $(head -c 600 "$TMP/mlog")"
	fi
done

# ---- an index record: readers rebuild it from the checkpoint record; verify reports it
damage index 2 middle
for e in 1 2 3; do expect_same $e; done
"$CKPT" info "$TMP/damaged" >"$TMP/out" 2>"$TMP/err" || problem "ckpt info with a damaged index record: $(cat "$TMP/err")"
"$CKPT" verify "$TMP/damaged" >"$TMP/out" 2>"$TMP/err" && problem "ckpt verify passed a damaged index record"
grep -q "^ckpt: error: epoch-0002: bad index record" "$TMP/err" || problem "ckpt verify: $(cat "$TMP/err")"

# ---- a checkpoint record deleted by retention while damaged: which blobs it referenced is
# unknown then, so they stayed stored with no checkpoint to read them. gc frees them at once
# (the store then takes what a pristine store takes after the same gc); until a damaged record
# is gone, verify names only the record, not the blobs it may reference
damage ckpt 1 middle
"$CKPT" verify "$TMP/damaged" >"$TMP/out" 2>"$TMP/err"
[ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "epoch-0001: bad checkpoint record" "$TMP/err" ||
	problem "ckpt verify, damaged checkpoint record: $(cat "$TMP/err")"
"$CKPT" gc "$TMP/damaged" --keep-last 2 >"$TMP/out" 2>"$TMP/err" || problem "gc of a damaged checkpoint: $(cat "$TMP/err")"
grep -q "^gc: deleted 1 checkpoint;" "$TMP/out" &&
	grep -qE "^gc: repaired reference counting: freed [1-9][0-9]* blobs? no checkpoint references and 0 stray chunks \([1-9][0-9]* bytes\)" "$TMP/out" ||
	problem "gc of a damaged checkpoint: $(cat "$TMP/out")"
"$CKPT" verify "$TMP/damaged" >"$TMP/out" 2>"$TMP/err" || problem "ckpt verify after gc: $(cat "$TMP/err")"
rm -rf "$TMP/gcref"
cp -r "$pristine" "$TMP/gcref"
"$CKPT" gc "$TMP/gcref" --keep-last 2 >"$TMP/out" 2>&1 || problem "gc of the pristine copy: $(cat "$TMP/out")"
grep -q "repaired" "$TMP/out" && problem "gc of a pristine store repaired something: $(cat "$TMP/out")"
[ "$("$CKPT" info "$TMP/damaged" | grep '^stored-bytes:')" = "$("$CKPT" info "$TMP/gcref" | grep '^stored-bytes:')" ] ||
	problem "after gc the damaged store keeps other bytes than the pristine one: $("$CKPT" info "$TMP/damaged" | grep stored-bytes) vs $("$CKPT" info "$TMP/gcref" | grep stored-bytes)"
expect_same 2
expect_same 3

# ---- a blob record: ckpt info shows everything else and says so in one line, exit 1 (it
# refused the whole store); ckpt verify names the tensors using it
damage blobs '#3' last
"$CKPT" info "$TMP/damaged" >"$TMP/out" 2>"$TMP/err" && problem "ckpt info passed a damaged blob record"
[ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "^ckpt: error: store .*: corrupt blob record [0-9a-f]*\.\.\.: " "$TMP/err" ||
	problem "ckpt info with a damaged blob record: $(cat "$TMP/err")"
grep -q "^checkpoints: 3$" "$TMP/out" && grep -q "^file-size: " "$TMP/out" ||
	problem "ckpt info with a damaged blob record did not show the rest: $(cat "$TMP/out")"
"$CKPT" verify "$TMP/damaged" >"$TMP/out" 2>"$TMP/err" && problem "ckpt verify passed a damaged blob record"
grep -q "bad tensor" "$TMP/err" || problem "ckpt verify, damaged blob record: $(cat "$TMP/err")"

# ---- a damaged key: epoch 3's checkpoint key gets a high bit (past the last epoch a store
# holds) while its index record keeps 3. Every command and the mount take epoch 2 as latest;
# gc refuses in one line and deletes nothing (it took the damaged epoch as the newest and
# deleted the newest readable one); ckpt verify names the key
rm -rf "$TMP/damaged"
cp -r "$pristine" "$TMP/damaged"
read -r at len < <("$OFF" "$TMP/damaged" ckpt 3) || fail "record_offset ckpt 3"
python3 -c "import sys; f=open(sys.argv[1],'r+b'); f.seek(int(sys.argv[2])-6); c=f.read(1)[0]; f.seek(int(sys.argv[2])-6); f.write(bytes([c^1]))" \
	"$TMP/damaged/data.mdb" "$at" || fail "flip the key"
cp "$TMP/damaged/data.mdb" "$TMP/keyed.mdb"
[ "$("$CKPT" info "$TMP/damaged" 2>/dev/null | sed -n 's/^latest: //p')" = epoch-0002 ] ||
	problem "ckpt info: latest is not epoch-0002 with a damaged key: $("$CKPT" info "$TMP/damaged" 2>&1 | grep latest)"
[ "$("$CKPT" show "$TMP/damaged" latest 2>&1)" = "$(cat "$TMP/ref/show2")" ] || problem "ckpt show latest is not epoch 2"
expect_fail "gc of .*: epoch 3 has an index record without a checkpoint record: a damaged key" "$CKPT" gc "$TMP/damaged" --keep-last 1
cmp -s "$TMP/damaged/data.mdb" "$TMP/keyed.mdb" || problem "a refused gc changed data.mdb"
"$CKPT" verify "$TMP/damaged" >"$TMP/out" 2>"$TMP/err" && problem "ckpt verify passed a damaged key"
grep -q "bad key (past the last epoch" "$TMP/err" || problem "ckpt verify, damaged key: $(cat "$TMP/err")"

# ---- optimizer.param_groups that is not JSON (records sealed with valid CRCs): param_groups.json
# is refused (it was served as the stored text), as checkpoint.pt refuses it
for bad in '[{"params":[0],"params":[1]}]' '[{"params":[0],"name":"\u0000x"}]' '[{"params":[0]' '{}'; do
	rm -rf "$TMP/damaged"
	cp -r "$pristine" "$TMP/damaged"
	CKPT_STORE_TEST_OLD_INPUT=1 "$TOOLS/store_fixture" set-extra "$TMP/damaged" 2 optimizer.param_groups "$bad" || fail "set-extra"
	"$CKPT" cat "$TMP/damaged" epoch-0002/optimizer/param_groups.json >"$TMP/out" 2>"$TMP/err" &&
		problem "param_groups.json served from '$bad'"
	grep -q "optimizer.param_groups is not \(valid JSON\|a JSON list\)" "$TMP/err" || problem "param_groups '$bad': $(cat "$TMP/err")"
	"$CKPT" cat "$TMP/damaged" epoch-0001/optimizer/param_groups.json >/dev/null ||
		problem "epoch 1's param_groups.json failed beside a damaged epoch 2"
	"$CKPT" verify "$TMP/damaged" >"$TMP/out" 2>"$TMP/err" && problem "ckpt verify passed param_groups '$bad'"
	grep -q "^ckpt: error: epoch-0002: bad record optimizer.param_groups" "$TMP/err" ||
		problem "ckpt verify, param_groups '$bad': $(cat "$TMP/err")"
done

# ---- the best record: rebuilt from the index records, so every reader names the right best;
# ckpt verify reports the damage; every epoch still reads
want_best=$("$CKPT" info "$pristine" | sed -n 's/^best: //p')
damage meta best middle
for e in 1 2 3; do expect_same $e; done
[ "$("$CKPT" info "$TMP/damaged" 2>&1 | sed -n 's/^best: //p')" = "$want_best" ] ||
	problem "ckpt info: best is not $want_best after a damaged best record"
[ "$("$CKPT" show "$TMP/damaged" best 2>&1)" = "$("$CKPT" show "$pristine" best)" ] ||
	problem "ckpt show best differs after a damaged best record"
"$CKPT" verify "$TMP/damaged" >"$TMP/out" 2>"$TMP/err" && problem "ckpt verify passed a damaged best record"
grep -q "^ckpt: error: bad best record" "$TMP/err" || problem "ckpt verify: $(cat "$TMP/err")"
mount_store "$TMP/damaged" "$TMP/mnt"
[ "$(readlink "$TMP/mnt/best")" = "$want_best" ] ||
	problem "mount: best is '$(readlink "$TMP/mnt/best")', not $want_best, after a damaged best record"
cmp -s "$TMP/mnt/epoch-0002/model.safetensors" "$TMP/ref/st2" || problem "mount: epoch 2 differs"
unmount_store "$TMP/mnt"

# ---- a best record with a valid CRC that names another epoch than the best: verify says so
rm -rf "$TMP/damaged"
cp -r "$pristine" "$TMP/damaged"
read -r at len < <("$OFF" "$TMP/damaged" meta best) || fail "record_offset meta best"
other=1
[ "$want_best" = epoch-0001 ] && other=2
python3 - "$TMP/damaged/data.mdb" "$at" "$other" <<'PY' || fail "rewrite the best record"
import struct, sys, zlib
body = struct.pack("<HHQ", 2, 0, int(sys.argv[3]))
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    f.write(body + struct.pack("<I", zlib.crc32(body)))
PY
expect_fail "^ckpt: error: bad best record \(it names epoch-000$other, but by the index records the best by the monitored metric \(min\) is $want_best\)$" "$CKPT" verify "$TMP/damaged"

# ---- run metadata: the store is refused, by every command, in one line
damage meta run random
for cmd in info log verify "show 1"; do
	# shellcheck disable=SC2086
	expect_fail "corrupt run metadata" "$CKPT" ${cmd%% *} "$TMP/damaged" ${cmd#"${cmd%% *}"}
done
"$BIN/ckptfs" "$TMP/damaged" "$TMP/mnt" -f 2>"$TMP/err" && problem "ckptfs mounted damaged run metadata"
grep -q "corrupt run metadata" "$TMP/err" || problem "ckptfs: $(cat "$TMP/err")"

# ---- no lock.mdb: the mount reads, and creates none
rm -rf "$TMP/damaged" && cp -r "$pristine" "$TMP/damaged" && rm "$TMP/damaged/lock.mdb"
mount_store "$TMP/damaged" "$TMP/mnt"
cmp -s "$TMP/mnt/epoch-0003/model.safetensors" "$TMP/ref/st3" || problem "mount without lock.mdb: epoch 3 differs"
[ -e "$TMP/damaged/lock.mdb" ] && problem "the mount created lock.mdb"
unmount_store "$TMP/mnt"
[ -e "$TMP/damaged/lock.mdb" ] && problem "the mount left a lock.mdb"

# ---- a node size: the data size in the LMDB node header of epoch 2's checkpoint record grows
# by 1 MiB, past the end of data.mdb. Readers: epoch 2 is a damaged record, never a signal, the
# rest reads, the mount keeps serving. Writers (ckpt gc, --compact, ckpt-train --resume) refuse
# the file in one line and change nothing.
rm -rf "$TMP/damaged" && cp -r "$pristine" "$TMP/damaged"
read -r at len < <("$OFF" "$TMP/damaged" ckpt 2) || fail "record_offset ckpt 2"
python3 - "$TMP/damaged/data.mdb" $((at - 14)) <<'PY' || fail "node size"
import struct, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    hi = struct.unpack("<H", f.read(2))[0]
    f.seek(int(sys.argv[2]))
    f.write(struct.pack("<H", hi | 0x10))
PY
for cmd in info log verify "ls -l" "show 2" "cat history.csv"; do
	# shellcheck disable=SC2086
	"$CKPT" ${cmd%% *} "$TMP/damaged" ${cmd#"${cmd%% *}"} >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ $rc -le 1 ] || problem "ckpt $cmd on a damaged node size: exit $rc: $(head -c 300 "$TMP/err")"
done
expect_fail "checkpoint record of epoch 2 \(.*\) reaches past the end of the file" "$CKPT" show "$TMP/damaged" 2
expect_same 1
expect_same 3
cp "$TMP/damaged/data.mdb" "$TMP/data.before"
expect_fail "data.mdb is damaged \(page [0-9]+ of the 'ckpt' database: node" "$CKPT" gc "$TMP/damaged" --keep-last 1
expect_fail "data.mdb is damaged" "$CKPT" gc "$TMP/damaged" --keep-last 1 --compact
[ -e "$TMP/damaged/data.mdb.gc" ] && problem "gc --compact left data.mdb.gc behind"
# a backup copies the damage as LMDB finds it; the copy does not read back: the source is
# named as damaged (the message named the backup), and nothing is left at the destination
expect_fail "store .*/damaged is damaged: its copy does not read back .*ckpt verify" \
	"$CKPT" backup "$TMP/damaged" "$TMP/damaged.bk"
[ -e "$TMP/damaged.bk" ] && problem "a failed backup left $(ls -A "$TMP/damaged.bk")"
if trainer_usable; then
	"$BIN/ckpt-train" --store "$TMP/damaged" --resume --epochs 4 --quiet >"$TMP/out" 2>"$TMP/err"
	rc=$?
	[ $rc -eq 1 ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q "data.mdb is damaged" "$TMP/err" ||
		problem "ckpt-train --resume on a damaged node size: exit $rc: $(head -c 300 "$TMP/err")"
fi
cmp -s "$TMP/damaged/data.mdb" "$TMP/data.before" || problem "a refused writer changed data.mdb"
mount_store "$TMP/damaged" "$TMP/mnt"
cat "$TMP/mnt/epoch-0002/metrics.json" >/dev/null 2>&1 && problem "the mount read epoch 2 past the end of data.mdb"
cmp -s "$TMP/mnt/epoch-0001/model.safetensors" "$TMP/ref/st1" || problem "mount: epoch 1 differs (node size)"
cmp -s "$TMP/mnt/epoch-0003/model.safetensors" "$TMP/ref/st3" || problem "mount: epoch 3 differs (node size)"
ls -l "$TMP/mnt" >/dev/null 2>&1
[ "$(readlink "$TMP/mnt/latest")" = epoch-0003 ] || problem "the mount died after a damaged node size"
unmount_store "$TMP/mnt"

echo "metadata records: $failures failure(s)"
[ $random_rc -eq 0 ] && [ $failures -eq 0 ]
