#!/usr/bin/env bash
# tests/integration/test_lib_intree.sh - a C program linked against the tree's own build
# (-Lbuild/lib -lckpt with an rpath, no `make install`) starts: libckpt.so's soname is
# libckpt.so.0, which the loader looks for beside it.
set -uo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
make -s -C "$root" build/lib/libckpt.so.0 >"$WORK/make.log" 2>&1 ||
	fail "make build/lib/libckpt.so.0: $(tail -n 3 "$WORK/make.log")"
[ -e "$root/build/lib/libckpt.so.0" ] || fail "build/lib has no libckpt.so.0 (the soname)"
cat >"$WORK/use.c" <<'CEOF'
#include <ckpt/store.h>
#include <stdio.h>

int main(void)
{
	printf("%s\n", ckpt_strerror(CKPT_ECORRUPT));
	return 0;
}
CEOF
cc -std=c11 -I"$root/include" -o "$WORK/use" "$WORK/use.c" -L"$root/build/lib" -lckpt \
	-Wl,-rpath,"$root/build/lib" 2>"$WORK/cc.log" || fail "cc: $(tail -n 3 "$WORK/cc.log")"
out=$("$WORK/use" 2>&1) || fail "the program linked in the tree does not start: $out"
[ "$out" = "corrupt record" ] || fail "unexpected output: $out"
echo "test_lib_intree: ok"
