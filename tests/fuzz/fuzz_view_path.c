/* tests/fuzz/fuzz_view_path.c - libFuzzer harness for the view's path resolution (fs/view.c)
 *
 * A small store (two epochs, hostile tensor names: "../../etc/passwd", "a/b", ".hidden", a
 * control byte, a 300-byte name) is written once into a mkdtemp directory. Each input is
 *   byte 0: flags (follow the last symlink; read the file; look up an inode directly)
 *   bytes 1..8: an inode number for getattr/list, bytes 9..16: a read offset
 *   the rest: a path, NUL-terminated
 * Resolution must give 0 or -ENOENT/-ENOTDIR/-EINVAL/-ENAMETOOLONG, and whatever it finds must
 * be a node of the view (getattr agrees) whose symlinks point at epoch directories only.
 */
#include <assert.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt/store.h"
#include "ckpt/view.h"

static char dir[256];
static ckpt_store *store;
static ckpt_view *view;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	ckpt_view_free(view);
	ckpt_store_close(store);
	if (dir[0])
		nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void quiet_log(void *ctx, const char *line)
{
	(void)ctx, (void)line;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	const char *base = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/fuzz_view_path.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	char path[512];
	snprintf(path, sizeof(path), "%s/store", dir);
	ckpt_run_meta meta = {.model = "mlp", .layers = "2,2", .optimizer = "sgd",
	                      .hyperparams = "{}", .dataset = "synthetic", .monitor = "val_loss"};
	ckpt_store_options opts = {.no_sync = true, .chunk_size = 16};
	ckpt_store *w;
	if (ckpt_store_create(&w, path, &meta, &opts))
		abort();
	char longname[301];
	memset(longname, 'x', 300);
	longname[300] = '\0';
	const char *names[] = {"fc1.weight", "../../etc/passwd", "a/b", ".hidden", "ctl\001x",
	                       "%2F", "..", longname};
	static const char groups[] = "[{\"lr\":0.1,\"params\":[0]}]";
	float v[6] = {1, 2, 3, 4, 5, 6};
	uint64_t shape[2] = {2, 3};
	for (uint64_t e = 1; e <= 2; e++) {
		ckpt_writer *wr;
		if (ckpt_writer_begin(&wr, w, e))
			abort();
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (ckpt_writer_put_tensor(wr, names[i], i % 2 ? CKPT_GROUP_OPTIMIZER : CKPT_GROUP_MODEL,
			                           CKPT_DTYPE_FLOAT32, 2, shape, "cuda:0", v, sizeof(v)))
				abort();
		ckpt_writer_set_step(wr, e * 10);
		if (ckpt_writer_set_metric(wr, "val_loss", 1.0 / (double)e) ||
		    ckpt_writer_set_extra(wr, "optimizer.param_groups", groups, strlen(groups)) ||
		    ckpt_writer_commit(wr))
			abort();
	}
	ckpt_store_close(w);
	ckpt_view_options vo = {.log = quiet_log};
	if (ckpt_store_open(&store, path, CKPT_OPEN_READONLY) || ckpt_view_new(&view, store, &vo))
		abort();
	return 0;
}

static void check_node(const ckpt_view_attr *a)
{
	ckpt_view_attr again;
	assert(ckpt_view_getattr(&again, view, a->ino) == 0);
	assert(again.ino == a->ino && again.kind == a->kind && again.size == a->size);
	assert((a->mode & 0222) == 0 || a->kind == CKPT_VIEW_SYMLINK);
	if (a->kind == CKPT_VIEW_SYMLINK) {
		char target[256];
		assert(ckpt_view_readlink(target, sizeof(target), view, a->ino) == 0);
		assert(strncmp(target, "epoch-", 6) == 0 && !strchr(target, '/'));
	}
}

static uint64_t load_u64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 17 || size > 4096)
		return 0;
	uint8_t flags = data[0];
	uint64_t ino = load_u64(data + 1), offset = load_u64(data + 9) % 65536;
	char *path = malloc(size - 16);
	if (!path)
		return 0;
	memcpy(path, data + 17, size - 17);
	path[size - 17] = '\0';

	ckpt_view_attr a;
	int rc = ckpt_view_resolve(&a, view, path, flags & 1);
	assert(rc == 0 || rc == -ENOENT || rc == -ENOTDIR || rc == -EINVAL || rc == -ENAMETOOLONG ||
	       rc == -ELOOP);
	if (rc == 0) {
		check_node(&a);
		if (a.kind == CKPT_VIEW_FILE && (flags & 2)) {
			ckpt_view_file *f;
			if (ckpt_view_open(&f, NULL, view, a.ino) == 0) {
				char buf[4096];
				size_t got;
				assert(ckpt_view_file_read(f, offset, buf, sizeof(buf), &got) == 0);
				assert(offset >= a.size ? got == 0 : got == (a.size - offset < 4096 ? a.size - offset : 4096));
				ckpt_view_file_close(f);
			}
		}
	}
	if (flags & 4) {
		/* any inode number: a node of the view or -ENOENT */
		rc = ckpt_view_getattr(&a, view, ino);
		assert(rc == 0 || rc == -ENOENT);
		if (rc == 0) {
			check_node(&a);
			ckpt_view_listing l;
			rc = ckpt_view_list(&l, view, ino);
			assert(a.kind == CKPT_VIEW_DIR ? rc == 0 : rc == -ENOTDIR);
			if (rc == 0) {
				for (size_t i = 0; i < l.count; i++) {
					const char *n = l.entries[i].name;
					assert(n[0] && n[0] != '.' && !strchr(n, '/') && strlen(n) <= 255);
					ckpt_view_attr b;
					int lrc = ckpt_view_lookup(&b, view, ino, n);
					/* an entry whose attributes could not be computed (a file that
					 * cannot be rendered) fails its lookup with the same error */
					if (l.entries[i].attr_rc ? lrc != l.entries[i].attr_rc
					                         : lrc != 0 || b.ino != l.entries[i].attr.ino) {
						fprintf(stderr, "listing of %#llx has '%s' (ino %#llx) but lookup gives %d (%s), ino %#llx\n",
						        (unsigned long long)ino, n, (unsigned long long)l.entries[i].attr.ino, lrc,
						        ckpt_view_last_error(), lrc ? 0ull : (unsigned long long)b.ino);
						abort();
					}
				}
				ckpt_view_listing_free(&l);
			}
		}
	}
	free(path);
	return 0;
}
