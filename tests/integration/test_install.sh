#!/usr/bin/env bash
# tests/integration/test_install.sh - `make install PREFIX=...` gives programs and a library that
# a C program (and, where g++ is installed, a C++ one) builds against with pkg-config, linked
# dynamically and statically: it writes a checkpoint, reads it back, and the installed `ckpt`
# reads the store it wrote.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
prefix=$WORK/prefix
make -s -C "$root" install PREFIX="$prefix" >"$WORK/install.log" 2>&1 ||
	fail "make install: $(tail -n 3 "$WORK/install.log")"
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
