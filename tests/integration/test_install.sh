#!/usr/bin/env bash
# tests/integration/test_install.sh - `make install PREFIX=...` gives programs and a library that
# a C program (and, where g++ is installed, a C++ one) builds against with pkg-config, linked
# dynamically and statically: it writes a checkpoint, reads it back, and the installed `ckpt`
# reads the store it wrote. A PREFIX or DESTDIR with spaces, &, ;, quotes, | or # installs there
# (and a program linked with pkg-config and an rpath runs); ldconfig runs only for root without
# DESTDIR (from PATH, else /sbin or /usr/sbin; none found or a failure is a note); the CUDA
# plug-in that was built is installed when nvcc is gone at install time, and an install without
# one removes a stale one; `make uninstall` removes exactly what was installed.
# Nothing is installed outside $WORK, and ldconfig is a stand-in that records its calls.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
printf '#!/bin/sh\necho called >>"%s"\n' "$WORK/ldconfig.calls" >"$WORK/fake-ldconfig"
chmod +x "$WORK/fake-ldconfig"
# mk GOAL VAR=VALUE...: make GOAL in the checkout with the stand-in ldconfig; output in make.log
mk() {
	make -s -C "$root" LDCONFIG="$WORK/fake-ldconfig" "$@" >"$WORK/make.log" 2>&1
}
ldconfig_calls() {
	if [ -e "$WORK/ldconfig.calls" ]; then wc -l <"$WORK/ldconfig.calls"; else echo 0; fi
}
prefix=$WORK/prefix
mk install PREFIX="$prefix" || fail "make install: $(tail -n 3 "$WORK/make.log")"
if [ "$(id -u)" = 0 ]; then
	[ "$(ldconfig_calls)" = 1 ] ||
		fail "make install as root without DESTDIR ran ldconfig $(ldconfig_calls) times, not once"
else
	[ "$(ldconfig_calls)" = 0 ] || fail "make install by a user ran ldconfig"
fi
for f in bin/ckpt-train bin/ckptfs bin/ckpt lib/libckpt.a lib/libckpt.so lib/libckpt.so.0 \
	lib/pkgconfig/ckpt.pc include/ckpt/store.h include/ckpt/tensor.h include/ckpt/holders.h \
	include/ckpt/message.h; do
	[ -e "$prefix/$f" ] || fail "make install did not install $f"
done
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
pkg-config --exists ckpt || fail "pkg-config does not find ckpt.pc"

cat >"$WORK/use.c" <<'CEOF'
#include <ckpt/holders.h>
#include <ckpt/message.h>
#include <ckpt/store.h>
#include <ckpt/tensor.h>
#include <stdio.h>
#include <string.h>

#define TRY(x)                                                                       \
	do {                                                                             \
		if ((x) != 0) {                                                          \
			ckpt_print_line(stderr, "use: error: ", "%s: %s", #x, ckpt_last_error()); \
			return 1;                                                        \
		}                                                                        \
	} while (0)

int main(int argc, char **argv)
{
	(void)argc;
	ckpt_run_meta meta;
	memset(&meta, 0, sizeof(meta));
	meta.model = "mlp";
	meta.layers = "2,3";
	meta.optimizer = "sgd";
	meta.hyperparams = "{}";
	meta.dataset = "none";
	meta.monitor = "val_loss";
	meta.monitor_mode = CKPT_MODE_MIN;
	ckpt_store_options opts;
	memset(&opts, 0, sizeof(opts));
	ckpt_store *s;
	TRY(ckpt_store_create(&s, argv[1], &meta, &opts));
	float w[6] = {1, 2, 3, 4, 5, 6};
	uint64_t shape[2] = {3, 2};
	ckpt_writer *wr;
	TRY(ckpt_writer_begin(&wr, s, 1));
	TRY(ckpt_writer_put_tensor(wr, "fc1.weight", CKPT_GROUP_MODEL, CKPT_DTYPE_FLOAT32, 2, shape,
	                           "cpu", w, sizeof(w)));
	TRY(ckpt_writer_set_metric(wr, "val_loss", 0.5));
	TRY(ckpt_writer_commit(wr));
	ckpt_snapshot *snap;
	const ckpt_checkpoint *c;
	TRY(ckpt_snapshot_open(&snap, s));
	TRY(ckpt_snapshot_checkpoint(&c, snap, 1));
	const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, 0);
	float back[6];
	TRY(ckpt_tensor_read(back, snap, t, 0, sizeof(back)));
	int same = memcmp(back, w, sizeof(w)) == 0;
	ckpt_snapshot_close(snap);
	ckpt_store_close(s);
	char who[256], data[4096];
	snprintf(data, sizeof(data), "%s/data.mdb", argv[1]);
	if (ckpt_flock_holders(who, sizeof(who), data) < 0) /* nobody holds it now */
		return 1;
	printf("%s\n", same ? "round trip ok" : "round trip differs");
	return same ? 0 : 1;
}
CEOF
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$WORK/use.c" $(pkg-config --cflags --libs ckpt) \
	-Wl,-rpath,"$prefix/lib" -o "$WORK/use-dynamic" 2>"$WORK/cc.err" ||
	fail "building against the installed library: $(cat "$WORK/cc.err")"
# shellcheck disable=SC2046
cc -std=c11 "$WORK/use.c" $(pkg-config --cflags ckpt) "$prefix/lib/libckpt.a" \
	$(pkg-config --static --libs ckpt | sed 's/-lckpt//') -o "$WORK/use-static" 2>"$WORK/cc.err" ||
	fail "linking libckpt.a with pkg-config --static: $(cat "$WORK/cc.err")"
for kind in dynamic static; do
	rm -rf "$WORK/store-$kind"
	out=$("$WORK/use-$kind" "$WORK/store-$kind" 2>&1) || fail "$kind program: $out"
	[ "$out" = "round trip ok" ] || fail "$kind program: $out"
	"$prefix/bin/ckpt" verify "$WORK/store-$kind" >/dev/null 2>"$WORK/err" ||
		fail "the installed ckpt cannot verify the store: $(cat "$WORK/err")"
done
# only the ckpt_* API is exported: a program's own function named like an internal one
# (store_error) neither replaces libckpt's nor clashes with it when linking statically
exported=$(nm -D --defined-only "$prefix/lib/libckpt.so" | awk '$3 !~ /^ckpt_/ {print $3}')
[ -z "$exported" ] || fail "libckpt.so exports internal symbols: $(echo $exported | head -c 200)"
cat >"$WORK/clash.c" <<'CEOF'
#include <ckpt/store.h>
#include <stdio.h>
int store_error(int code, const char *what);
int store_error(int code, const char *what)
{
	(void)what;
	printf("the program's store_error(%d) was called\n", code);
	return 0;
}
int main(void)
{
	ckpt_store *s = NULL;
	int rc = ckpt_store_open(&s, "/nonexistent/store", 0);
	printf("open: %s\n", rc != 0 && s == NULL ? "refused" : "ACCEPTED");
	return rc != 0 && s == NULL ? 0 : 1;
}
CEOF
# shellcheck disable=SC2046
cc -std=c11 "$WORK/clash.c" $(pkg-config --cflags --libs ckpt) -Wl,-rpath,"$prefix/lib" \
	-o "$WORK/clash-dynamic" 2>"$WORK/cc.err" || fail "clash program: $(cat "$WORK/cc.err")"
# shellcheck disable=SC2046
cc -std=c11 "$WORK/clash.c" $(pkg-config --cflags ckpt) "$prefix/lib/libckpt.a" \
	$(pkg-config --static --libs ckpt | sed 's/-lckpt//') -o "$WORK/clash-static" 2>"$WORK/cc.err" ||
	fail "a program's store_error() clashes with libckpt.a: $(cat "$WORK/cc.err")"
for kind in dynamic static; do
	out=$("$WORK/clash-$kind" 2>&1)
	[ "$out" = "open: refused" ] || fail "$kind: libckpt called the program's function: $out"
done

if command -v g++ >/dev/null; then
	cp "$WORK/use.c" "$WORK/use.cpp"
	# shellcheck disable=SC2046
	g++ -Wall -Werror "$WORK/use.cpp" $(pkg-config --cflags --libs ckpt) \
		-Wl,-rpath,"$prefix/lib" -o "$WORK/use-cxx" 2>"$WORK/cc.err" ||
		fail "a C++ program against the installed headers: $(cat "$WORK/cc.err")"
	rm -rf "$WORK/store-cxx"
	out=$("$WORK/use-cxx" "$WORK/store-cxx" 2>&1) || fail "C++ program: $out"
	echo "ok: C and C++ programs build against the installed libckpt (dynamic, static)"
else
	echo "ok: C programs build against the installed libckpt (dynamic, static); no g++ for C++"
fi

# a PREFIX with the characters a shell or sed reads specially: one path, and ckpt.pc escapes it
# the way pkg-config wants (a program built from its output with an rpath runs)
odd="$WORK/x sp/pre fix/a&b;c'd|e\"f#g\\h"
mk install PREFIX="$odd" || fail "make install PREFIX='$odd': $(tail -n 3 "$WORK/make.log")"
for f in bin/ckpt bin/ckptfs bin/ckpt-train lib/libckpt.a lib/libckpt.so.0 lib/libckpt.so \
	lib/pkgconfig/ckpt.pc include/ckpt/store.h include/ckpt/message.h; do
	[ -e "$odd/$f" ] || fail "make install PREFIX='$odd' did not install $f"
done
flags=$(PKG_CONFIG_PATH=$odd/lib/pkgconfig pkg-config --cflags --libs ckpt) ||
	fail "pkg-config cannot read the ckpt.pc of PREFIX='$odd'"
eval "set -- $flags" || fail "pkg-config's flags for PREFIX='$odd' are not shell words: $flags"
[ "$1" = "-I$odd/include" ] || fail "pkg-config --cflags for PREFIX='$odd' gives '$1'"
cc -std=c11 "$WORK/clash.c" "$@" -Wl,-rpath,"$odd/lib" -o "$WORK/odd-rpath" 2>"$WORK/cc.err" ||
	fail "building with pkg-config against PREFIX='$odd': $(cat "$WORK/cc.err")"
out=$("$WORK/odd-rpath" 2>&1)
[ "$out" = "open: refused" ] || fail "program with -Wl,-rpath,PREFIX/lib: $out"
# README's other way, no rpath but LD_LIBRARY_PATH (which ld.so splits at ':' and ';' both)
# shellcheck disable=SC2046
cc -std=c11 "$WORK/clash.c" $(pkg-config --cflags --libs ckpt) -o "$WORK/clash-plain" \
	2>"$WORK/cc.err" || fail "building without an rpath: $(cat "$WORK/cc.err")"
out=$(LD_LIBRARY_PATH="$prefix/lib" "$WORK/clash-plain" 2>&1)
[ "$out" = "open: refused" ] || fail "program run with LD_LIBRARY_PATH=PREFIX/lib: $out"
# uninstall removes what install put there and leaves a file of someone else's
echo '/* mine */' >"$odd/include/ckpt/mine.h"
mk uninstall PREFIX="$odd" || fail "make uninstall PREFIX='$odd': $(tail -n 3 "$WORK/make.log")"
left=$(cd "$odd" && find . ! -type d ! -name mine.h)
[ -z "$left" ] || fail "make uninstall PREFIX='$odd' left: $left"
[ -e "$odd/include/ckpt/mine.h" ] || fail "make uninstall removed a header it did not install"
echo "ok: install and uninstall under PREFIX='$odd'; pkg-config + rpath (or LD_LIBRARY_PATH) runs"

# DESTDIR: staged under it, ckpt.pc names PREFIX alone, no ldconfig; uninstall with the same
# DESTDIR leaves no file and no include/ckpt/
dest="$WORK/dest dir&'x"
calls=$(ldconfig_calls)
mk install DESTDIR="$dest" PREFIX=/opt/ckpt ||
	fail "make install DESTDIR='$dest': $(tail -n 3 "$WORK/make.log")"
[ -e "$dest/opt/ckpt/lib/libckpt.so.0" ] ||
	fail "make install DESTDIR='$dest' did not stage libckpt"
grep -qx 'prefix=/opt/ckpt' "$dest/opt/ckpt/lib/pkgconfig/ckpt.pc" ||
	fail "ckpt.pc under DESTDIR: $(head -n 1 "$dest/opt/ckpt/lib/pkgconfig/ckpt.pc")"
[ "$(ldconfig_calls)" = "$calls" ] || fail "make install with DESTDIR ran ldconfig"
mk uninstall DESTDIR="$dest" PREFIX=/opt/ckpt ||
	fail "make uninstall DESTDIR='$dest': $(tail -n 3 "$WORK/make.log")"
left=$(cd "$dest" && find . ! -type d)
[ -z "$left" ] || fail "make uninstall DESTDIR='$dest' left: $left"
[ ! -e "$dest/opt/ckpt/include/ckpt" ] || fail "make uninstall left an empty include/ckpt/"
echo "ok: DESTDIR with odd characters installs and uninstalls, without ldconfig"

# ldconfig as root: a bare name that is not on PATH (sudo's, or a user's PATH without sbin) is
# looked for in LDCONFIG_DIRS (/sbin /usr/sbin); none found, or one that fails, is a note on
# stderr and the install goes on (it was silent). Stand-ins only, never the system's ldconfig.
if [ "$(id -u)" = 0 ]; then
	mkdir "$WORK/sbin"
	cp "$WORK/fake-ldconfig" "$WORK/sbin/ckpt-test-ldconfig"
	printf '#!/bin/sh\nexit 1\n' >"$WORK/sbin/ckpt-test-ldconfig-fails"
	chmod +x "$WORK/sbin/ckpt-test-ldconfig-fails"
	ld_prefix="$WORK/ld prefix"
	# ldmk VAR=VALUE...: make install as root with these, PATH without sbin; make.log, make.err
	ldmk() {
		env PATH=/usr/bin:/bin make -s -C "$root" install PREFIX="$ld_prefix" "$@" \
			>"$WORK/make.log" 2>"$WORK/make.err" ||
			fail "make install $*: $(tail -n 3 "$WORK/make.err")"
	}
	calls=$(ldconfig_calls)
	ldmk LDCONFIG=ckpt-test-ldconfig LDCONFIG_DIRS="$WORK/nosuch $WORK/sbin"
	[ "$(ldconfig_calls)" = $((calls + 1)) ] && [ ! -s "$WORK/make.err" ] ||
		fail "ckpt-test-ldconfig not found in LDCONFIG_DIRS: $(cat "$WORK/make.err")"
	grep -qxF "$WORK/sbin/ckpt-test-ldconfig" "$WORK/make.log" ||
		fail "make install does not say which ldconfig it ran: $(cat "$WORK/make.log")"
	# expect_ldconfig_note WHY VAR=VALUE...: make install succeeds with this one note
	expect_ldconfig_note() {
		local why=$1
		shift
		ldmk "$@"
		[ "$(cat "$WORK/make.err")" = "note: $why; run ldconfig before using libckpt.so.0 \
from $ld_prefix/lib" ] || fail "make install $*: not the note '$why': $(cat "$WORK/make.err")"
	}
	expect_ldconfig_note "$WORK/nonexistent not found" LDCONFIG="$WORK/nonexistent"
	expect_ldconfig_note "ckpt-test-ldconfig not found on PATH or in $WORK/nosuch" \
		LDCONFIG=ckpt-test-ldconfig LDCONFIG_DIRS="$WORK/nosuch"
	expect_ldconfig_note "$WORK/sbin/ckpt-test-ldconfig-fails failed" \
		LDCONFIG="$WORK/sbin/ckpt-test-ldconfig-fails"
	expect_ldconfig_note "$WORK/sbin/ckpt-test-ldconfig-fails failed" \
		LDCONFIG=ckpt-test-ldconfig-fails LDCONFIG_DIRS="$WORK/sbin"
	echo "ok: ldconfig is looked for in LDCONFIG_DIRS; none found, or a failure, is a note"
else
	echo "note: finding ldconfig outside PATH not tried (make install runs it only for root)"
fi

# the CUDA plug-in: installed from build/lib when nvcc is not found at install time (sudo's
# secure_path), and an install without one (CUDA=0) removes the one an earlier install left
cuda_prefix=$WORK/cuda-prefix
plugin=$root/build/lib/ckpt-train-cuda.so
if [ -f "$plugin" ]; then
	no_nvcc_path=
	IFS=: read -ra path_dirs <<<"$PATH"
	for d in "${path_dirs[@]}"; do
		[ -x "$d/nvcc" ] || no_nvcc_path=${no_nvcc_path:+$no_nvcc_path:}$d
	done
	PATH=$no_nvcc_path mk install PREFIX="$cuda_prefix" CUDA_HOME="$WORK/no-cuda" ||
		fail "make install without nvcc: $(tail -n 3 "$WORK/make.log")"
	cmp -s "$plugin" "$cuda_prefix/lib/ckpt-train-cuda.so" ||
		fail "make install without nvcc in PATH left out the CUDA plug-in that was built"
	echo "ok: the built CUDA plug-in is installed when nvcc is not found at install time"
else
	echo "note: installing the plug-in without nvcc not tried (this build has no $plugin)"
	mkdir -p "$cuda_prefix/lib"
	echo stale >"$cuda_prefix/lib/ckpt-train-cuda.so"
fi
mk install PREFIX="$cuda_prefix" CUDA=0 ||
	fail "make install CUDA=0: $(tail -n 3 "$WORK/make.log")"
[ ! -e "$cuda_prefix/lib/ckpt-train-cuda.so" ] ||
	fail "make install CUDA=0 kept the CUDA plug-in of an earlier install"
echo "ok: make install CUDA=0 removes an earlier install's CUDA plug-in"
