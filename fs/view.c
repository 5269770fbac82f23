/* fs/view.c - the virtual tree: inode decoding, lookup, attributes, listings, open files
 *
 * Every call works on one fresh read snapshot (directory-level data changes with each commit)
 * except open files, which keep the snapshot they were opened on (history.csv moves on when
 * the store's only grew and its reader reached the end: ckpt_view_file_follow; history.csv and
 * metrics.json move onto the store's current bytes when read again from 0:
 * ckpt_view_file_reread). A node is decoded from its inode number and checked against the
 * snapshot; file sizes come from rendering the file's layout, which reads no tensor bytes.
 */
#include <errno.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "fs/render_util.h"
#include "fs/view_int.h"

/* Verify-ahead: a helper thread with a snapshot of its own checks the CRC-32 of the chunks
 * after the one being read and publishes the address it checked. A reader that finds the
 * address it is about to serve published there skips its own check: the bytes at that address
 * in the shared map are exactly the ones verified (committed LMDB pages never change while a
 * snapshot holds them). Anything else (no helper, a different address, a failed check) falls
 * back to the reader verifying the chunk itself, so a bad chunk is always caught by the reader
 * and reported by it. This moves the CRC pass off the thread that feeds the kernel.
 *
 * Cold stores: before a chunk is checked, the kernel is asked to read the next one into the
 * page cache (MADV_WILLNEED on its pages of the map), so the disk reads ahead of the CRC
 * pass with a deep queue instead of one read-around per page fault. */
#define VERIFY_AHEAD_MIN_BYTES (8u << 20)

typedef struct verify_ahead {
	pthread_t thread;
	bool started;
	bool stop; /* atomic */
	size_t first_seg;
	uint64_t first_chunk;
	const void ***checked; /* per segment, per chunk: verified address (atomic) or NULL */
	/* the chunk the helper is checking (under lock), so a reader that catches up waits for
	 * that check instead of running the same CRC pass beside it */
	pthread_mutex_t lock;
	pthread_cond_t checked_one;
	bool busy;
	size_t busy_seg;
	uint64_t busy_chunk;
} verify_ahead;

struct ckpt_view_file {
	ckpt_view *view;
	ckpt_snapshot *snap;
	view_layout layout;
	uint64_t ino;
	uint64_t epoch;
	char path[VIEW_NAME_MAX + 64]; /* for messages: "epoch-0003/model/fc1.weight.npy" */
	bool logged;                   /* one log line per open file is enough */
	bool ahead_tried;
	verify_ahead ahead;
	uint64_t size;        /* as rendered at open; kept while parked */
	uint64_t fingerprint; /* of the layout: what re-acquiring must find again */
	bool parked;          /* snapshot released (ckpt_view_file_park), layout too unless kept */
	bool layout_kept;     /* parked with its layout: every byte is the layout's own copy */
	bool pinned;          /* content gone from the store since open: never parked */
	/* history.csv follows appends (ckpt_view_file_follow): the last read was at the end and
	 * answered nothing, and the store generation whose history.csv was last compared */
	bool end_seen;
	bool follow_tried;
	uint64_t follow_gen;
};

static void default_log(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "%s\n", line);
}

int ckpt_view_check_map_location(const char *value)
{
	view_render_options opts;
	if (render_parse_map_location(&opts, value) == 0)
		return 0;
	view_set_error("bad map_location '%s' (expected cpu, keep, cuda or cuda:N, N 0-127)", value);
	return -EINVAL;
}

static int data_file_stat(struct stat *st, ckpt_store *store)
{
	char path[4200];
	if ((size_t)snprintf(path, sizeof(path), "%s/data.mdb", ckpt_store_path(store)) >=
	    sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return stat(path, st);
}

int ckpt_view_new(ckpt_view **out, ckpt_store *store, const ckpt_view_options *opts)
{
	*out = NULL;
	const char *ml = opts ? opts->map_location : NULL;
	int rc = ckpt_view_check_map_location(ml);
	if (rc)
		return rc;
	ckpt_view *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->store = store;
	v->log = opts && opts->log ? opts->log : default_log;
	v->log_ctx = opts ? opts->log_ctx : NULL;
	if (pthread_mutex_init(&v->damaged_lock, NULL) != 0) {
		free(v);
		return -ENOMEM;
	}
	if (pthread_mutex_init(&v->snaps_lock, NULL) != 0) {
		pthread_mutex_destroy(&v->damaged_lock);
		free(v);
		return -ENOMEM;
	}
	if (pthread_mutex_init(&v->history_lock, NULL) != 0) {
		pthread_mutex_destroy(&v->snaps_lock);
		pthread_mutex_destroy(&v->damaged_lock);
		free(v);
		return -ENOMEM;
	}
	render_parse_map_location(&v->render, ml); /* checked above */
	struct stat st;
	if (data_file_stat(&st, store) == 0) {
		v->data_known = true;
		v->data_dev = st.st_dev;
		v->data_ino = st.st_ino;
	}
	*out = v;
	return 0;
}

bool ckpt_view_check_store_file(ckpt_view *view)
{
	struct stat st;
	if (!view->data_known || view->data_replaced_said)
		return view->data_replaced_said;
	if (data_file_stat(&st, view->store) == 0
	        ? st.st_dev == view->data_dev && st.st_ino == view->data_ino
	        : errno != ENOENT)
		return false; /* the same file, or cannot tell (EACCES) */
	view->data_replaced_said = true;
	char line[1200];
	snprintf(line, sizeof(line),
	         "%s/data.mdb is no longer the file this mount opened (replaced, e.g. restored "
	         "from a backup, or removed): the mount goes on showing the store as it was; "
	         "unmount and mount again to see the new one",
	         ckpt_store_path(view->store));
	view->log(view->log_ctx, line);
	return true;
}

void ckpt_view_free(ckpt_view *view)
{
	if (!view)
		return;
	pthread_mutex_destroy(&view->damaged_lock);
	pthread_mutex_destroy(&view->snaps_lock);
	pthread_mutex_destroy(&view->history_lock);
	free(view->damaged);
	free(view->history_text);
	free(view);
}

void view_report_damaged(ckpt_view *view, uint64_t epoch, int rc, const char *why)
{
	pthread_mutex_lock(&view->damaged_lock);
	bool seen = false;
	for (size_t i = 0; i < view->ndamaged && !seen; i++)
		seen = view->damaged[i] == epoch;
	if (!seen && view->ndamaged == view->damaged_cap) {
		size_t cap = view->damaged_cap ? view->damaged_cap * 2 : 8;
		uint64_t *grown = realloc(view->damaged, cap * sizeof(*grown));
		if (grown) {
			view->damaged = grown;
			view->damaged_cap = cap;
		}
	}
	/* without memory to remember it, the line comes again next time: better than never */
	if (!seen && view->ndamaged < view->damaged_cap)
		view->damaged[view->ndamaged++] = epoch;
	pthread_mutex_unlock(&view->damaged_lock);
	if (seen)
		return;
	char name[32], line[1200];
	view_epoch_name(name, sizeof(name), epoch);
	snprintf(line, sizeof(line), "EIO: %s cannot be shown: %s (%s)", name, ckpt_strerror(rc),
	         why && *why ? why : "no details");
	view->log(view->log_ctx, line);
}

/* ---- nodes ------------------------------------------------------------------------------ */

static bool has_param_groups(const ckpt_checkpoint *c)
{
	const void *data;
	size_t len;
	return ckpt_checkpoint_extra(c, VIEW_PARAM_GROUPS_KEY, &data, &len) == 0;
}

static int no_such(uint64_t ino)
{
	view_set_error("no such node (inode %" PRIu64 ")", ino);
	return -ENOENT;
}

/* Decode @p ino within @p snap; -ENOENT if it does not exist there. An epoch node whose
 * checkpoint record cannot be read fails with the store's error (EIO through FUSE), logged
 * once per epoch. */
static int decode_node(view_node *out, ckpt_view *view, ckpt_snapshot *snap, uint64_t ino)
{
	memset(out, 0, sizeof(*out));
	out->ino = ino;
	uint64_t e;
	switch (ino) {
	case VIEW_INO_ROOT:
		out->kind = CKPT_VIEW_DIR;
		return 0;
	case VIEW_INO_RUN_JSON:
	case VIEW_INO_HISTORY:
		out->kind = CKPT_VIEW_FILE;
		return 0;
	case VIEW_INO_BEST:
		out->kind = CKPT_VIEW_SYMLINK;
		/* an epoch past VIEW_MAX_EPOCH has no directory: no link dangling to it */
		if (ckpt_snapshot_best(&e, snap) != 0 || e > VIEW_MAX_EPOCH)
			return no_such(ino);
		out->epoch = e;
		return 0;
	case VIEW_INO_LATEST:
		out->kind = CKPT_VIEW_SYMLINK;
		if (ckpt_snapshot_latest(&e, snap) != 0) /* never past CKPT_MAX_EPOCH */
			return no_such(ino);
		out->epoch = e;
		return 0;
	}
	if ((ino >> VIEW_ENTRY_BITS) == 0)
		return no_such(ino);
	out->epoch = (ino >> VIEW_ENTRY_BITS) - 1;
	out->entry = (uint32_t)(ino & VIEW_ENTRY_MASK);
	int rc = ckpt_snapshot_checkpoint(&out->ckpt, snap, out->epoch);
	if (rc == -ENOENT)
		return no_such(ino);
	if (rc) {
		view_set_error("epoch %" PRIu64 ": %s (%s)", out->epoch, ckpt_strerror(rc),
		               ckpt_last_error());
		if (rc != -ENOMEM)
			view_report_damaged(view, out->epoch, rc, ckpt_last_error());
		return rc;
	}
	switch (out->entry) {
	case VIEW_ENT_DIR:
	case VIEW_ENT_MODEL_DIR:
	case VIEW_ENT_OPTIMIZER_DIR:
		out->kind = CKPT_VIEW_DIR;
		return 0;
	case VIEW_ENT_METRICS:
	case VIEW_ENT_SAFETENSORS:
	case VIEW_ENT_MODEL_PT:
	case VIEW_ENT_CHECKPOINT_PT:
		out->kind = CKPT_VIEW_FILE;
		return 0;
	case VIEW_ENT_PARAM_GROUPS:
		out->kind = CKPT_VIEW_FILE;
		return has_param_groups(out->ckpt) ? 0 : no_such(ino);
	}
	if (out->entry < VIEW_ENT_TENSOR0)
		return no_such(ino);
	const ckpt_tensor_info *t =
	    ckpt_checkpoint_tensor_at(out->ckpt, out->entry - VIEW_ENT_TENSOR0);
	if (!t || (t->group != CKPT_GROUP_MODEL && t->group != CKPT_GROUP_OPTIMIZER))
		return no_such(ino);
	out->kind = CKPT_VIEW_FILE;
	out->tensor = t;
	return 0;
}

/* Time of the newest commit (which, after a run resumed from an earlier epoch, need not be the
 * newest epoch's: a backup's quick check must see history.csv change), or the store's
 * creation time when there is no checkpoint. */
static int64_t latest_time(ckpt_view *view, ckpt_snapshot *snap)
{
	const uint64_t gen = ckpt_snapshot_generation(snap);
	pthread_mutex_lock(&view->snaps_lock);
	bool known = view->newest_known && view->newest_gen == gen;
	int64_t t = view->newest_ns;
	pthread_mutex_unlock(&view->snaps_lock);
	if (known)
		return t;
	uint64_t e;
	const ckpt_checkpoint *c;
	int rc = ckpt_snapshot_newest_time(&t, snap);
	if (rc == -ENOENT) {
		t = ckpt_store_meta(view->store)->created_ns;
	} else if (rc) {
		/* a damaged index and checkpoint record: the newest epoch's time, at least; not kept,
		 * so that the next request scans again */
		if (ckpt_snapshot_latest(&e, snap) == 0 && ckpt_snapshot_checkpoint(&c, snap, e) == 0)
			return ckpt_checkpoint_time_ns(c);
		return ckpt_store_meta(view->store)->created_ns;
	}
	pthread_mutex_lock(&view->snaps_lock);
	if (!view->newest_known || gen >= view->newest_gen) {
		view->newest_known = true;
		view->newest_gen = gen;
		view->newest_ns = t;
	}
	pthread_mutex_unlock(&view->snaps_lock);
	return t;
}

static int render_node_layout(view_layout *out, ckpt_view *view, ckpt_snapshot *snap,
                              const view_node *n)
{
	const ckpt_store *store = view->store;
	switch (n->ino) {
	case VIEW_INO_RUN_JSON:
		return view_render_run_json(out, view->store);
	case VIEW_INO_HISTORY:
		return view_render_history(out, view, snap);
	}
	if (n->tensor)
		return render_npy(out, n->tensor);
	switch (n->entry) {
	case VIEW_ENT_METRICS:
		return view_render_metrics(out, snap, n->ckpt);
	case VIEW_ENT_PARAM_GROUPS:
		return view_render_param_groups(out, n->ckpt);
	case VIEW_ENT_SAFETENSORS:
		return render_safetensors(out, store, n->ckpt);
	case VIEW_ENT_MODEL_PT:
		return render_model_pt(out, store, n->ckpt, &view->render);
	case VIEW_ENT_CHECKPOINT_PT:
		return render_checkpoint_pt(out, store, n->ckpt, &view->render);
	}
	return -EINVAL;
}

/* The renderers' reason (e.g. a tensor name that is not UTF-8) becomes the view's error. */
static int render_node(view_layout *out, ckpt_view *view, ckpt_snapshot *snap, const view_node *n)
{
	render_clear_error();
	int rc = render_node_layout(out, view, snap, n);
	if (rc && *render_last_error())
		view_set_error("%s", render_last_error());
	return rc;
}

static void symlink_target(char *buf, size_t cap, const view_node *n)
{
	view_epoch_name(buf, cap, n->epoch);
}

/* Attributes of a decoded node; a file's size is that of its layout, rendered here. */
static int node_attr(ckpt_view_attr *out, ckpt_view *view, ckpt_snapshot *snap, const view_node *n)
{
	memset(out, 0, sizeof(*out));
	out->ino = n->ino;
	out->kind = n->kind;
	out->nlink = n->kind == CKPT_VIEW_DIR ? 2 : 1;
	out->mode = n->kind == CKPT_VIEW_DIR ? 0555 : n->kind == CKPT_VIEW_SYMLINK ? 0777 : 0444;
	if (n->ckpt) {
		out->mtime_ns = ckpt_checkpoint_time_ns(n->ckpt);
		out->immutable = n->entry != VIEW_ENT_METRICS;
	} else if (n->ino == VIEW_INO_RUN_JSON) {
		out->mtime_ns = ckpt_store_meta(view->store)->created_ns;
		out->immutable = true;
	} else {
		out->mtime_ns = latest_time(view, snap);
	}
	if (n->ino == VIEW_INO_ROOT) {
		uint64_t *epochs = NULL;
		size_t count = 0;
		int rc = ckpt_snapshot_list(&epochs, &count, snap);
		size_t shown = 0;
		for (size_t i = 0; i < count; i++)
			shown += epochs[i] <= VIEW_MAX_EPOCH;
		free(epochs);
		if (rc)
			return rc;
		out->nlink = (uint32_t)(2 + shown);
	} else if (n->ckpt && n->entry == VIEW_ENT_DIR) {
		out->nlink = 4;
	}
	if (n->kind == CKPT_VIEW_SYMLINK) {
		char target[32];
		symlink_target(target, sizeof(target), n);
		out->size = strlen(target);
	} else if (n->kind == CKPT_VIEW_FILE) {
		view_layout l;
		view_layout_init(&l);
		int rc = render_node(&l, view, snap, n);
		out->size = l.size;
		view_layout_free(&l);
		if (rc)
			return rc;
	}
	return 0;
}

/* Read snapshots are shared: every request and open file that needs one while the store is at
 * the same generation (nothing committed in between) gets the same snapshot, counted. So a
 * thousand open files of a mount hold one LMDB reader slot, not a thousand (the lock file has
 * 1024, and the trainer, `ckpt` and every other reader need one too), and decoded checkpoint
 * records are decoded once. Each file still reads the commit it was opened on: a file opened
 * after a commit gets a snapshot of the new generation. */
typedef struct view_snap {
	ckpt_snapshot *snap;
	uint64_t generation;
	unsigned refs; /* under the view's snaps_lock */
	struct view_snap *next;
} view_snap;

/* Of the store's 1,024 LMDB reader slots (shared by every process using it), the most this
 * mount holds: open files whose epochs were deleted or rewritten keep a snapshot each. */
#define VIEW_MAX_SNAPS 896

/* The newest snapshot held, under snaps_lock, with a reference taken; NULL if none. */
static ckpt_snapshot *newest_held_locked(ckpt_view *view)
{
	view_snap *best = NULL;
	for (view_snap *vs = view->snaps; vs; vs = vs->next)
		if (!best || vs->generation > best->generation)
			best = vs;
	if (!best)
		return NULL;
	best->refs++;
	return best->snap;
}

/* No new snapshot could be taken (the mount holds VIEW_MAX_SNAPS, or the table is full): the
 * mount goes on showing the newest snapshot it holds. Said once until a new one can be taken
 * again (view->readers_full_said). */
static void log_readers_full(ckpt_view *view, size_t held)
{
	char line[1200];
	snprintf(line, sizeof(line),
	         "the reader table of %s is full or this mount holds %zu read snapshots (files kept "
	         "open whose epochs were deleted or rewritten since keep one each): the mount "
	         "shows the store as of an older commit, and later commits once some of those "
	         "files are closed",
	         ckpt_store_path(view->store), held);
	view->log(view->log_ctx, line);
}

/* A snapshot of the store as of now, shared; give it back with view_snap_put(). */
static int view_snap_get(ckpt_snapshot **out, ckpt_view *view)
{
	uint64_t now;
	bool known = ckpt_store_generation(&now, view->store) == 0;
	size_t held = 0;
	pthread_mutex_lock(&view->snaps_lock);
	for (view_snap *vs = view->snaps; vs; vs = vs->next, held++)
		if (known && vs->generation == now) {
			vs->refs++;
			*out = vs->snap;
			pthread_mutex_unlock(&view->snaps_lock);
			return 0;
		}
	pthread_mutex_unlock(&view->snaps_lock);
	view_snap *fresh = calloc(1, sizeof(*fresh));
	if (!fresh) {
		view_set_error("out of memory");
		return -ENOMEM;
	}
	int rc = held >= VIEW_MAX_SNAPS ? -EAGAIN : ckpt_snapshot_open(&fresh->snap, view->store);
	if (rc) {
		free(fresh);
		ckpt_snapshot *old = NULL;
		bool say = false;
		if (rc == -EAGAIN) {
			pthread_mutex_lock(&view->snaps_lock);
			old = newest_held_locked(view);
			say = !view->readers_full_said;
			view->readers_full_said = true;
			pthread_mutex_unlock(&view->snaps_lock);
			if (say)
				log_readers_full(view, held);
		}
		if (old) {
			*out = old;
			return 0;
		}
		view_set_error("cannot open a read snapshot of %s: %s (%s)",
		               ckpt_store_path(view->store), ckpt_strerror(rc),
		               held >= VIEW_MAX_SNAPS ? "the mount holds too many" : ckpt_last_error());
		return rc;
	}
	fresh->generation = ckpt_snapshot_generation(fresh->snap);
	fresh->refs = 1;
	pthread_mutex_lock(&view->snaps_lock);
	if (held < VIEW_MAX_SNAPS * 3 / 4) /* well below the limit again: said again next time */
		view->readers_full_said = false;
	for (view_snap *vs = view->snaps; vs; vs = vs->next)
		if (vs->generation == fresh->generation) {
			/* another thread opened this generation meanwhile: share theirs */
			vs->refs++;
			*out = vs->snap;
			pthread_mutex_unlock(&view->snaps_lock);
			ckpt_snapshot_close(fresh->snap);
			free(fresh);
			return 0;
		}
	fresh->next = view->snaps;
	view->snaps = fresh;
	*out = fresh->snap;
	pthread_mutex_unlock(&view->snaps_lock);
	return 0;
}

/* Give back a snapshot from view_snap_get(); the last user closes it. Accepts NULL. */
static void view_snap_put(ckpt_view *view, ckpt_snapshot *snap)
{
	if (!snap)
		return;
	pthread_mutex_lock(&view->snaps_lock);
	view_snap **at = &view->snaps;
	while (*at && (*at)->snap != snap)
		at = &(*at)->next;
	view_snap *vs = *at;
	if (vs && --vs->refs == 0)
		*at = vs->next;
	else
		vs = NULL;
	pthread_mutex_unlock(&view->snaps_lock);
	if (vs) {
		ckpt_snapshot_close(vs->snap);
		free(vs);
	}
}

/* True while @p snap still sees the store's latest commit. */
static bool snap_is_current(ckpt_view *view, ckpt_snapshot *snap)
{
	uint64_t now;
	return ckpt_store_generation(&now, view->store) == 0 &&
	       now == ckpt_snapshot_generation(snap);
}

static int open_snapshot(ckpt_snapshot **out, ckpt_view *view)
{
	return view_snap_get(out, view);
}

int ckpt_view_getattr(ckpt_view_attr *out, ckpt_view *view, uint64_t ino)
{
	ckpt_snapshot *snap;
	int rc = open_snapshot(&snap, view);
	if (rc)
		return rc;
	view_node n;
	rc = decode_node(&n, view, snap, ino);
	if (!rc)
		rc = node_attr(out, view, snap, &n);
	view_snap_put(view, snap);
	return rc;
}

/* A checkpoint with more tensors than the entry space holds (16.7 million: only a hostile or
 * absurd store) shows files for the first ones only, never inode numbers that spill into the
 * next epoch's; model.safetensors and the .pt files still hold every tensor. */
#ifdef CKPT_TESTING
size_t view_test_max_tensor_files = VIEW_MAX_TENSOR_FILES;
#define MAX_TENSOR_FILES view_test_max_tensor_files
#else
#define MAX_TENSOR_FILES VIEW_MAX_TENSOR_FILES
#endif

/* File name of tensor @p t (escaped + ".npy") into buf (>= 256 bytes). */
static int tensor_file_name(char *buf, size_t cap, const ckpt_tensor_info *t)
{
	int rc = ckpt_view_escape_name(buf, cap, t->name, 4);
	if (rc)
		return rc;
	size_t len = strlen(buf);
	if (len + 5 > cap)
		return -ERANGE;
	memcpy(buf + len, ".npy", 5);
	return 0;
}

/* Inode of the tensor file @p name of @p group in checkpoint @p c. */
static int find_tensor_file(uint64_t *out, const ckpt_checkpoint *c, uint64_t epoch,
                            ckpt_tensor_group group, const char *name)
{
	size_t len = strlen(name);
	if (len < 5 || strcmp(name + len - 4, ".npy") != 0 || len > VIEW_NAME_MAX)
		return -ENOENT;
	char stem[VIEW_NAME_MAX + 1];
	memcpy(stem, name, len - 4);
	stem[len - 4] = '\0';
	char file[VIEW_NAME_MAX + 8];
	if (!strstr(stem, "%~")) {
		char decoded[CKPT_MAX_NAME + 1];
		const ckpt_tensor_info *t;
		if (ckpt_view_unescape_name(decoded, sizeof(decoded), stem) != 0 ||
		    ckpt_checkpoint_find_tensor(&t, c, group, decoded) != 0)
			return -ENOENT;
		/* only the canonical spelling names the file */
		if (t->index >= MAX_TENSOR_FILES || tensor_file_name(file, sizeof(file), t) != 0 ||
		    strcmp(file, name) != 0)
			return -ENOENT;
		*out = view_epoch_ino(epoch, VIEW_ENT_TENSOR0 + t->index);
		return 0;
	}
	size_t n = ckpt_checkpoint_tensor_count(c);
	for (size_t i = 0; i < n && i < MAX_TENSOR_FILES; i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(c, i);
		if (!t || t->group != group)
			continue;
		if (tensor_file_name(file, sizeof(file), t) == 0 && strcmp(file, name) == 0) {
			*out = view_epoch_ino(epoch, VIEW_ENT_TENSOR0 + (uint32_t)i);
			return 0;
		}
	}
	return -ENOENT;
}

static const struct {
	const char *name;
	uint32_t entry;
} epoch_entries[] = {
    {"metrics.json", VIEW_ENT_METRICS},    {"model", VIEW_ENT_MODEL_DIR},
    {"optimizer", VIEW_ENT_OPTIMIZER_DIR}, {"model.safetensors", VIEW_ENT_SAFETENSORS},
    {"model.pt", VIEW_ENT_MODEL_PT},       {"checkpoint.pt", VIEW_ENT_CHECKPOINT_PT},
};
#define N_EPOCH_ENTRIES (sizeof(epoch_entries) / sizeof(epoch_entries[0]))

/* Inode of @p name in the decoded directory @p dir (existence of the child unchecked). */
static int child_ino(uint64_t *out, const view_node *dir, const char *name)
{
	if (dir->kind != CKPT_VIEW_DIR)
		return -ENOTDIR;
	if (dir->ino == VIEW_INO_ROOT) {
		uint64_t e;
		if (strcmp(name, "run.json") == 0)
			*out = VIEW_INO_RUN_JSON;
		else if (strcmp(name, "history.csv") == 0)
			*out = VIEW_INO_HISTORY;
		else if (strcmp(name, "best") == 0)
			*out = VIEW_INO_BEST;
		else if (strcmp(name, "latest") == 0)
			*out = VIEW_INO_LATEST;
		else if (view_parse_epoch_name(&e, name) == 0)
			*out = view_epoch_ino(e, VIEW_ENT_DIR);
		else
			return -ENOENT;
		return 0;
	}
	switch (dir->entry) {
	case VIEW_ENT_DIR:
		for (size_t i = 0; i < N_EPOCH_ENTRIES; i++) {
			if (strcmp(name, epoch_entries[i].name) == 0) {
				*out = view_epoch_ino(dir->epoch, epoch_entries[i].entry);
				return 0;
			}
		}
		return -ENOENT;
	case VIEW_ENT_MODEL_DIR:
		return find_tensor_file(out, dir->ckpt, dir->epoch, CKPT_GROUP_MODEL, name);
	case VIEW_ENT_OPTIMIZER_DIR:
		if (strcmp(name, "param_groups.json") == 0) {
			*out = view_epoch_ino(dir->epoch, VIEW_ENT_PARAM_GROUPS);
			return 0;
		}
		return find_tensor_file(out, dir->ckpt, dir->epoch, CKPT_GROUP_OPTIMIZER, name);
	}
	return -ENOTDIR;
}

/* What a local file system answers for a name longer than its f_namemax; no name in the view
 * is longer (long tensor names end in a hash). Both front ends (FUSE, ckpt ls/cat) get it. */
static int name_too_long(size_t len)
{
	view_set_error("a name of %zu bytes; at most %d", len, VIEW_NAME_MAX);
	return -ENAMETOOLONG;
}

static int lookup_in(ckpt_view_attr *out, ckpt_view *view, ckpt_snapshot *snap, uint64_t parent,
                     const char *name)
{
	view_node dir, child;
	uint64_t ino;
	if (strlen(name) > VIEW_NAME_MAX)
		return name_too_long(strlen(name));
	int rc = decode_node(&dir, view, snap, parent);
	if (rc)
		return rc;
	rc = child_ino(&ino, &dir, name);
	if (rc == -ENOENT)
		view_set_error("no such file: %s", name);
	if (rc)
		return rc;
	rc = decode_node(&child, view, snap, ino);
	if (rc == -ENOENT)
		view_set_error("no such file: %s", name);
	if (rc)
		return rc;
	return node_attr(out, view, snap, &child);
}

int ckpt_view_lookup(ckpt_view_attr *out, ckpt_view *view, uint64_t parent, const char *name)
{
	ckpt_snapshot *snap;
	int rc = open_snapshot(&snap, view);
	if (rc)
		return rc;
	rc = lookup_in(out, view, snap, parent, name);
	view_snap_put(view, snap);
	return rc;
}

int ckpt_view_resolve(ckpt_view_attr *out, ckpt_view *view, const char *path, bool follow)
{
	ckpt_snapshot *snap;
	int rc = open_snapshot(&snap, view);
	if (rc)
		return rc;
	view_node root;
	rc = decode_node(&root, view, snap, VIEW_INO_ROOT);
	if (!rc)
		rc = node_attr(out, view, snap, &root);
	const char *p = path;
	while (!rc && *p) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		const char *end = strchr(p, '/');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char name[VIEW_NAME_MAX + 1];
		if (len > VIEW_NAME_MAX) {
			rc = name_too_long(len);
			break;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		p += len;
		if (strcmp(name, ".") == 0)
			continue;
		if (strcmp(name, "..") == 0) {
			view_set_error("'..' is not allowed in a view path: %s", path);
			rc = -ENOENT;
			break;
		}
		if (out->kind != CKPT_VIEW_DIR) {
			view_set_error("not a directory before '%s' in %s", name, path);
			rc = -ENOTDIR;
			break;
		}
		rc = lookup_in(out, view, snap, out->ino, name);
		bool last = *p == '\0' || strspn(p, "/") == strlen(p);
		if (!rc && out->kind == CKPT_VIEW_SYMLINK && (!last || follow || p[0] == '/')) {
			/* best/latest -> an epoch directory at the root */
			view_node link;
			rc = decode_node(&link, view, snap, out->ino);
			if (!rc)
				rc = lookup_in(out, view, snap, VIEW_INO_ROOT,
				               (symlink_target(name, sizeof(name), &link), name));
		}
		if (!rc && *p == '/' && out->kind == CKPT_VIEW_FILE) {
			/* "run.json/": a trailing slash names a directory, as in the kernel */
			view_set_error("not a directory: %s", path);
			rc = -ENOTDIR;
		}
	}
	view_snap_put(view, snap);
	return rc;
}

/* ---- listings ---------------------------------------------------------------------------- */

typedef struct listing_builder {
	ckpt_view_listing *l;
	size_t cap;
} listing_builder;

/* Append a zeroed entry named @p name; on error the listing is unchanged. */
static int listing_push(ckpt_view_dirent **out, listing_builder *b, const char *name)
{
	ckpt_view_listing *l = b->l;
	if (l->count == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		ckpt_view_dirent *grown = realloc(l->entries, cap * sizeof(*grown));
		if (!grown)
			return -ENOMEM;
		l->entries = grown;
		b->cap = cap;
	}
	ckpt_view_dirent *d = &l->entries[l->count];
	memset(d, 0, sizeof(*d));
	d->name = strdup(name);
	if (!d->name)
		return -ENOMEM;
	l->count++;
	*out = d;
	return 0;
}

static int listing_add(listing_builder *b, const char *name, ckpt_view *view, ckpt_snapshot *snap,
                       uint64_t ino)
{
	ckpt_view_dirent *d;
	int rc = listing_push(&d, b, name);
	if (rc)
		return rc;
	view_node n;
	d->attr_rc = decode_node(&n, view, snap, ino);
	if (!d->attr_rc)
		d->attr_rc = node_attr(&d->attr, view, snap, &n);
	d->attr.ino = ino;
	d->attr.kind = n.kind;
	return 0;
}

static int list_tensors(listing_builder *b, ckpt_view *view, ckpt_snapshot *snap,
                        const view_node *dir, ckpt_tensor_group group)
{
	size_t n = ckpt_checkpoint_tensor_count(dir->ckpt);
	for (size_t i = 0; i < n && i < MAX_TENSOR_FILES; i++) {
		const ckpt_tensor_info *t = ckpt_checkpoint_tensor_at(dir->ckpt, i);
		if (!t || t->group != group)
			continue;
		char name[VIEW_NAME_MAX + 8];
		int rc = tensor_file_name(name, sizeof(name), t);
		if (!rc)
			rc =
			    listing_add(b, name, view, snap,
			                view_epoch_ino(dir->epoch, VIEW_ENT_TENSOR0 + (uint32_t)i));
		if (rc)
			return rc;
	}
	return 0;
}

static int listing_add_attr(listing_builder *b, const char *name, const ckpt_view_attr *attr)
{
	ckpt_view_dirent *d;
	int rc = listing_push(&d, b, name);
	if (!rc)
		d->attr = *attr;
	return rc;
}

/* Root entries. Each checkpoint is loaded once and serves both its directory's attributes and
 * history.csv's size (10,000 epochs: one pass, not three). A damaged checkpoint record costs
 * only its own epoch: its directory is listed without attributes (lookups of it fail) and
 * history.csv keeps an empty row for it. */
static int list_root(listing_builder *b, ckpt_view *view, ckpt_snapshot *snap)
{
	uint64_t *epochs = NULL;
	size_t count = 0;
	const ckpt_checkpoint **ckpts = NULL;
	view_layout history;
	view_layout_init(&history);
	int rc = view_load_readable_checkpoints(&epochs, &ckpts, &count, view, snap);
	if (rc)
		goto out;
	rc = listing_add(b, "run.json", view, snap, VIEW_INO_RUN_JSON);
	if (rc)
		goto out;
	ckpt_view_attr a = {.ino = VIEW_INO_HISTORY,
	                    .kind = CKPT_VIEW_FILE,
	                    .mode = 0444,
	                    .nlink = 1,
	                    .mtime_ns = latest_time(view, snap)};
	int hrc = view_render_history_of(&history, epochs, ckpts, count);
	a.size = history.size;
	rc = listing_add_attr(b, "history.csv", &a);
	if (!rc && hrc)
		b->l->entries[b->l->count - 1].attr_rc = hrc;
	uint64_t e;
	if (!rc && ckpt_snapshot_best(&e, snap) == 0 && e <= VIEW_MAX_EPOCH)
		rc = listing_add(b, "best", view, snap, VIEW_INO_BEST);
	if (!rc && ckpt_snapshot_latest(&e, snap) == 0)
		rc = listing_add(b, "latest", view, snap, VIEW_INO_LATEST);
	for (size_t i = 0; !rc && i < count; i++) {
		if (epochs[i] > VIEW_MAX_EPOCH) {
			/* no library version writes these now: a damaged key (the real epoch is then
			 * missing from the listing) or a store from an old one; said once, not hidden */
			view_report_damaged(view, epochs[i], CKPT_ECORRUPT,
			                    "its number is past the last epoch a store holds "
			                    "(2^39 - 1): a damaged key, or written by an old version");
			continue;
		}
		char name[32];
		view_epoch_name(name, sizeof(name), epochs[i]);
		ckpt_view_attr d = {
		    .ino = view_epoch_ino(epochs[i], VIEW_ENT_DIR),
		    .kind = CKPT_VIEW_DIR,
		    .mode = 0555,
		    .nlink = 4,
		    .mtime_ns = ckpts[i] ? ckpt_checkpoint_time_ns(ckpts[i]) : 0,
		    .immutable = true,
		};
		rc = listing_add_attr(b, name, &d);
		if (!rc && !ckpts[i])
			b->l->entries[b->l->count - 1].attr_rc = CKPT_ECORRUPT;
	}
out:
	view_layout_free(&history);
	free(ckpts);
	free(epochs);
	return rc;
}

int ckpt_view_list(ckpt_view_listing *out, ckpt_view *view, uint64_t ino)
{
	memset(out, 0, sizeof(*out));
	ckpt_snapshot *snap;
	int rc = open_snapshot(&snap, view);
	if (rc)
		return rc;
	listing_builder b = {.l = out};
	view_node dir;
	rc = decode_node(&dir, view, snap, ino);
	if (!rc)
		rc = node_attr(&out->self, view, snap, &dir);
	if (!rc && dir.kind != CKPT_VIEW_DIR) {
		view_set_error("not a directory (inode %" PRIu64 ")", ino);
		rc = -ENOTDIR;
	}
	if (rc)
		goto out;
	if (ino == VIEW_INO_ROOT) {
		rc = list_root(&b, view, snap);
	} else if (dir.entry == VIEW_ENT_DIR) {
		for (size_t i = 0; !rc && i < N_EPOCH_ENTRIES; i++)
			rc = listing_add(&b, epoch_entries[i].name, view, snap,
			                 view_epoch_ino(dir.epoch, epoch_entries[i].entry));
	} else if (dir.entry == VIEW_ENT_MODEL_DIR) {
		rc = list_tensors(&b, view, snap, &dir, CKPT_GROUP_MODEL);
	} else {
		if (has_param_groups(dir.ckpt))
			rc = listing_add(&b, "param_groups.json", view, snap,
			                 view_epoch_ino(dir.epoch, VIEW_ENT_PARAM_GROUPS));
		if (!rc)
			rc = list_tensors(&b, view, snap, &dir, CKPT_GROUP_OPTIMIZER);
	}
out:
	view_snap_put(view, snap);
	if (rc)
		ckpt_view_listing_free(out);
	return rc;
}

int ckpt_view_epochs(uint64_t **out, size_t *out_count, ckpt_view *view)
{
	*out = NULL;
	*out_count = 0;
	ckpt_snapshot *snap;
	int rc = open_snapshot(&snap, view);
	if (rc)
		return rc;
	rc = ckpt_snapshot_list(out, out_count, snap);
	view_snap_put(view, snap);
	if (rc)
		return rc;
	size_t n = 0;
	for (size_t i = 0; i < *out_count; i++)
		if ((*out)[i] <= VIEW_MAX_EPOCH)
			(*out)[n++] = (*out)[i];
	*out_count = n;
	return 0;
}

int ckpt_view_epoch_times(uint64_t **out_epochs, int64_t **out_times, size_t *out_count,
                          ckpt_view *view)
{
	*out_epochs = NULL;
	*out_times = NULL;
	*out_count = 0;
	ckpt_snapshot *snap;
	int rc = open_snapshot(&snap, view);
	if (rc)
		return rc;
	uint64_t *epochs = NULL;
	size_t count = 0;
	int64_t *times = NULL;
	rc = ckpt_snapshot_list(&epochs, &count, snap);
	if (!rc && count > 0 && !(times = malloc(count * sizeof(*times))))
		rc = -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; !rc && i < count; i++) {
		if (epochs[i] > VIEW_MAX_EPOCH)
			continue;
		const ckpt_checkpoint *c;
		epochs[n] = epochs[i];
		times[n++] = ckpt_snapshot_checkpoint(&c, snap, epochs[i]) == 0
		                 ? ckpt_checkpoint_time_ns(c)
		                 : -1;
	}
	view_snap_put(view, snap);
	if (rc || n == 0) {
		free(times);
		free(epochs);
		return rc;
	}
	*out_epochs = epochs;
	*out_times = times;
	*out_count = n;
	return 0;
}

void ckpt_view_listing_free(ckpt_view_listing *listing)
{
	if (!listing)
		return;
	for (size_t i = 0; i < listing->count; i++)
		free(listing->entries[i].name);
	free(listing->entries);
	memset(listing, 0, sizeof(*listing));
}

int ckpt_view_readlink(char *buf, size_t cap, ckpt_view *view, uint64_t ino)
{
	if (ino != VIEW_INO_BEST && ino != VIEW_INO_LATEST) {
		view_set_error("not a symlink (inode %" PRIu64 ")", ino);
		return -EINVAL;
	}
	ckpt_snapshot *snap;
	int rc = open_snapshot(&snap, view);
	if (rc)
		return rc;
	view_node n;
	rc = decode_node(&n, view, snap, ino);
	view_snap_put(view, snap);
	if (rc)
		return rc;
	char target[32];
	symlink_target(target, sizeof(target), &n);
	if (strlen(target) + 1 > cap)
		return -ERANGE;
	memcpy(buf, target, strlen(target) + 1);
	return 0;
}

/* ---- open files -------------------------------------------------------------------------- */

static void file_path(char *buf, size_t cap, const view_node *n)
{
	char epoch[32];
	view_epoch_name(epoch, sizeof(epoch), n->epoch);
	if (n->ino == VIEW_INO_RUN_JSON)
		snprintf(buf, cap, "run.json");
	else if (n->ino == VIEW_INO_HISTORY)
		snprintf(buf, cap, "history.csv");
	else if (n->tensor) {
		char file[VIEW_NAME_MAX + 8];
		if (tensor_file_name(file, sizeof(file), n->tensor) != 0)
			snprintf(file, sizeof(file), "?");
		snprintf(buf, cap, "%s/%s/%s", epoch,
		         n->tensor->group == CKPT_GROUP_MODEL ? "model" : "optimizer", file);
	} else
		for (size_t i = 0; i < N_EPOCH_ENTRIES; i++)
			if (epoch_entries[i].entry == n->entry)
				snprintf(buf, cap, "%s/%s", epoch, epoch_entries[i].name);
}

/* Identity of a rendered file: synthesized bytes and, for tensor windows, the content hash. */
static uint64_t layout_fingerprint(const view_layout *l)
{
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return 0;
	XXH3_64bits_reset(st);
	for (size_t i = 0; i < l->nsegs; i++) {
		const view_segment *seg = &l->segs[i];
		XXH3_64bits_update(st, &seg->length, sizeof(seg->length));
		if (seg->bytes) {
			XXH3_64bits_update(st, seg->bytes, (size_t)seg->length);
		} else {
			XXH3_64bits_update(st, seg->tensor->hash, sizeof(seg->tensor->hash));
			XXH3_64bits_update(st, &seg->tensor_offset, sizeof(seg->tensor_offset));
			uint8_t widen = seg->widen_bf16;
			XXH3_64bits_update(st, &widen, 1);
		}
	}
	uint64_t h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return h;
}

static void stop_verify_ahead(ckpt_view_file *f);

/* Snapshot + layout of @p f's node as of now. */
static int acquire(ckpt_view_file *f, view_node *n)
{
	int rc = open_snapshot(&f->snap, f->view);
	if (rc)
		return rc;
	rc = decode_node(n, f->view, f->snap, f->ino);
	if (!rc && n->kind != CKPT_VIEW_FILE) {
		rc = n->kind == CKPT_VIEW_DIR ? -EISDIR : -EINVAL;
		view_set_error("not a regular file (inode %" PRIu64 ")", f->ino);
	}
	if (!rc) {
		f->epoch = n->epoch;
		file_path(f->path, sizeof(f->path), n);
		rc = render_node(&f->layout, f->view, f->snap, n);
		if (rc)
			view_set_error("cannot render %s: %s", f->path, ckpt_strerror(rc));
	}
	return rc;
}

static void release_snapshot(ckpt_view_file *f)
{
	stop_verify_ahead(f);
	memset(&f->ahead, 0, sizeof(f->ahead));
	f->ahead_tried = false;
	view_snap_put(f->view, f->snap);
	f->snap = NULL;
}

static void release(ckpt_view_file *f)
{
	release_snapshot(f);
	view_layout_free(&f->layout);
}

/* True if a snapshot taken now renders @p f to the same bytes, so that parking it loses
 * nothing: false once its epoch was deleted or rewritten since it was opened. */
static bool still_in_store(ckpt_view_file *f)
{
	if (snap_is_current(f->view, f->snap))
		return true;
	ckpt_view_file probe = {.view = f->view, .ino = f->ino};
	view_layout_init(&probe.layout);
	view_node n;
	bool same = acquire(&probe, &n) == 0 && probe.layout.size == f->size &&
	            layout_fingerprint(&probe.layout) == f->fingerprint;
	release(&probe);
	return same;
}

/* True if every byte of @p l is the layout's own copy (history.csv, metrics.json, run.json,
 * param_groups.json): reading it needs no snapshot. */
static bool layout_is_private(const view_layout *l)
{
	for (size_t i = 0; i < l->nsegs; i++)
		if (!l->segs[i].bytes)
			return false;
	return true;
}

int ckpt_view_file_park(ckpt_view_file *f)
{
	if (f->parked)
		return 0;
	if (layout_is_private(&f->layout)) {
		/* only the snapshot goes: it reads on from its own bytes, and a history.csv can still
		 * compare them with the store's to follow appended rows */
		release_snapshot(f);
		f->parked = true;
		f->layout_kept = true;
		return 0;
	}
	if (f->pinned)
		return 0;
	if (!still_in_store(f)) {
		/* an open file reads what it was opened on: this one only from its snapshot */
		f->pinned = true;
		return 0;
	}
	release(f);
	f->parked = true;
	return 0;
}

int ckpt_view_generation(uint64_t *out, ckpt_view *view)
{
	return ckpt_store_generation(out, view->store);
}

int ckpt_view_file_rebase(ckpt_view_file *f)
{
	if (f->parked || f->pinned || !f->snap || snap_is_current(f->view, f->snap))
		return 0;
	ckpt_view_file probe = {.view = f->view, .ino = f->ino};
	view_layout_init(&probe.layout);
	view_node n;
	int rc = acquire(&probe, &n);
	if (rc == 0 && probe.layout.size == f->size &&
	    layout_fingerprint(&probe.layout) == f->fingerprint) {
		/* the same bytes; its chunks are checked again where the new snapshot maps them
		 * (a blob deleted and stored again lies on other pages) */
		release(f);
		f->snap = probe.snap;
		f->layout = probe.layout;
		return 0;
	}
	release(&probe);
	if (rc == 0 || rc == -ENOENT) {
		f->pinned = true; /* deleted or rewritten: it keeps what it was opened on */
		return 0;
	}
	return rc;
}

/* The text of a layout made of one run of synthesized bytes (history.csv), or NULL. */
static const uint8_t *layout_text(const view_layout *l)
{
	return l->nsegs == 1 && l->segs[0].bytes ? l->segs[0].bytes : NULL;
}

/* True if history.csv @p now (@p now_len bytes) is @p was (@p len bytes) with rows appended:
 * the same header and rows but for their last field, `best`, flipped between 0 and 1 in place. */
static bool history_grew_from(const uint8_t *was, size_t len, const uint8_t *now, size_t now_len)
{
	if (len == 0 || now_len <= len || was[len - 1] != '\n')
		return false;
	bool in_header = true;
	for (size_t i = 0; i < len; i++) {
		if (was[i] != now[i]) {
			/* a row's one-character last field: ",0\n" against ",1\n" */
			bool best_field = !in_header && i > 0 && i + 1 < len && was[i - 1] == ',' &&
			                  was[i + 1] == '\n' && now[i + 1] == '\n' &&
			                  (was[i] == '0' || was[i] == '1') &&
			                  (now[i] == '0' || now[i] == '1');
			if (!best_field)
				return false;
		}
		if (was[i] == '\n')
			in_header = false;
	}
	return true;
}

/* Make @p f read @p probe's snapshot and layout (taken over), give back the snapshot it read
 * and report the new size in @p out_attr. No reply may point into @p f's layout (the callers'
 * promise). */
static void move_onto(ckpt_view_file *f, ckpt_view_file *probe, ckpt_view_attr *out_attr)
{
	release(f);
	f->snap = probe->snap;
	f->layout = probe->layout;
	f->size = probe->layout.size;
	f->fingerprint = layout_fingerprint(&f->layout);
	f->pinned = false;
	f->parked = false;
	f->layout_kept = false;
	f->end_seen = false;
	f->follow_tried = false;
	out_attr->size = f->size;
}

int ckpt_view_file_follow(ckpt_view_file *f, ckpt_view_attr *out_attr, bool *out_moved)
{
	*out_moved = false;
	/* a parked history.csv kept its bytes (ckpt_view_file_park): it follows too */
	if (f->ino != VIEW_INO_HISTORY || (f->parked ? !f->layout_kept : !f->snap))
		return 0;
	if (!f->end_seen) {
		/* this read ends one whole version: a `cat` racing a commit gets no torn file */
		f->end_seen = true;
		return 0;
	}
	uint64_t gen;
	int rc = ckpt_store_generation(&gen, f->view->store);
	if (rc || (f->snap && gen == ckpt_snapshot_generation(f->snap)) ||
	    (f->follow_tried && gen == f->follow_gen))
		return rc;
	ckpt_view_file probe = {.view = f->view, .ino = f->ino};
	view_layout_init(&probe.layout);
	view_node n;
	rc = acquire(&probe, &n);
	if (rc == 0) {
		f->follow_tried = true;
		f->follow_gen = ckpt_snapshot_generation(probe.snap);
	}
	const uint8_t *was = layout_text(&f->layout), *now = layout_text(&probe.layout);
	if (rc == 0 && was && now &&
	    history_grew_from(was, (size_t)f->size, now, (size_t)probe.layout.size))
		rc = node_attr(out_attr, f->view, probe.snap, &n);
	else
		now = NULL;
	if (rc || !now) {
		release(&probe);
		return rc == -ENOENT ? 0 : rc;
	}
	move_onto(f, &probe, out_attr);
	*out_moved = true;
	return 0;
}

/* True for the files that change in place with commits and gc: history.csv, metrics.json. */
static bool file_is_live(const ckpt_view_file *f)
{
	return f->ino == VIEW_INO_HISTORY || ((f->ino >> VIEW_ENTRY_BITS) != 0 &&
	                                      (f->ino & VIEW_ENTRY_MASK) == VIEW_ENT_METRICS);
}

int ckpt_view_file_reread(ckpt_view_file *f, ckpt_view_attr *out_attr, bool *out_moved)
{
	*out_moved = false;
	/* both keep their bytes when parked (ckpt_view_file_park): compared with the store's */
	if (!file_is_live(f) || (f->parked ? !f->layout_kept : !f->snap))
		return 0;
	uint64_t gen;
	int rc = ckpt_store_generation(&gen, f->view->store);
	if (rc || (f->snap && gen == ckpt_snapshot_generation(f->snap)))
		return rc;
	ckpt_view_file probe = {.view = f->view, .ino = f->ino};
	view_layout_init(&probe.layout);
	view_node n;
	rc = acquire(&probe, &n);
	bool same = rc == 0 && probe.layout.size == f->size &&
	            layout_fingerprint(&probe.layout) == f->fingerprint;
	if (rc == 0 && !same)
		rc = node_attr(out_attr, f->view, probe.snap, &n);
	if (rc || same) {
		/* unchanged (ckpt_view_file_rebase() shares snapshots), or its epoch deleted: it
		 * reads what it has, as an open file of a deleted epoch does */
		release(&probe);
		return rc == -ENOENT ? 0 : rc;
	}
	move_onto(f, &probe, out_attr);
	*out_moved = true;
	return 0;
}

bool ckpt_view_file_is_parked(const ckpt_view_file *f)
{
	return f->parked;
}

/* Take a new snapshot for a parked file: only the same bytes may be served again. */
static int unpark(ckpt_view_file *f)
{
	view_node n;
	int rc = acquire(f, &n);
	if (!rc &&
	    (f->layout.size != f->size || layout_fingerprint(&f->layout) != f->fingerprint)) {
		view_set_error("%s changed or was deleted while its file was idle", f->path);
		rc = -ESTALE;
	}
	if (rc) {
		release(f);
		return rc == -ENOENT ? -ESTALE : rc;
	}
	f->parked = false;
	return 0;
}

int ckpt_view_open(ckpt_view_file **out, ckpt_view_attr *out_attr, ckpt_view *view, uint64_t ino)
{
	*out = NULL;
	ckpt_view_file *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->view = view;
	f->ino = ino;
	view_layout_init(&f->layout);
	view_node n;
	int rc = acquire(f, &n);
	if (rc)
		goto fail;
	f->size = f->layout.size;
	f->fingerprint = layout_fingerprint(&f->layout);
	if (out_attr) {
		/* same snapshot: the size is exactly the rendered one */
		rc = node_attr(out_attr, view, f->snap, &n);
		if (rc)
			goto fail;
		out_attr->size = f->layout.size;
	}
	*out = f;
	return 0;
fail:
	ckpt_view_file_close(f);
	return rc;
}

uint64_t ckpt_view_file_size(const ckpt_view_file *f)
{
	return f->size;
}

static void report_bad_tensor(ckpt_view_file *f, const ckpt_tensor_info *t, int rc)
{
	view_set_error("tensor '%s' of epoch %" PRIu64
	               " fails its stored CRC-32 or is missing (%s)",
	               t->name, f->epoch, ckpt_strerror(rc));
	if (f->logged)
		return;
	f->logged = true;
	char line[1400];
	snprintf(line, sizeof(line),
	         "EIO: tensor '%s' of epoch %" PRIu64 " (%s) fails its stored CRC-32 or is "
	         "missing (%s)",
	         t->name, f->epoch, f->path, ckpt_strerror(rc));
	f->view->log(f->view->log_ctx, line);
}

/* Start reading @p len bytes at @p data of the map into the page cache, without waiting: a
 * hint, so a failure only costs the readahead. */
static void prefetch_bytes(const void *data, size_t len)
{
	long page_size = sysconf(_SC_PAGESIZE);
	size_t page = page_size > 0 ? (size_t)page_size : 4096;
	uintptr_t start = (uintptr_t)data & ~(uintptr_t)(page - 1);
	size_t span = (size_t)((uintptr_t)data - start) + len;
	/* if the kernel refuses, the CRC pass faults the pages in as before */
	if (len > 0)
		(void)madvise((void *)start, span, MADV_WILLNEED);
}

/* Prefetch chunk @p k of @p t in @p snap (nothing if there is no such chunk). */
static void prefetch_chunk(ckpt_snapshot *snap, const ckpt_tensor_info *t, uint64_t k)
{
	const void *data;
	size_t len;
	if (k < t->nchunks && ckpt_tensor_chunk(&data, &len, snap, t, (uint32_t)k, false) == 0)
		prefetch_bytes(data, len);
}

/* The first tensor segment (not widened) of @p l after segment @p i, or nsegs. */
static size_t next_tensor_segment(const view_layout *l, size_t i)
{
	for (i++; i < l->nsegs; i++)
		if (!l->segs[i].bytes && !l->segs[i].widen_bf16)
			return i;
	return l->nsegs;
}

/* Prefetch the chunk the helper checks after chunk @p k of segment @p i (tensor @p t in the
 * helper's snapshot @p snap, checkpoint @p c): the next chunk, or the next tensor's first. */
static void prefetch_next(ckpt_snapshot *snap, const ckpt_checkpoint *c, const view_layout *l,
                          size_t i, const ckpt_tensor_info *t, uint64_t k)
{
	if (k + 1 < t->nchunks) {
		prefetch_chunk(snap, t, k + 1);
		return;
	}
	size_t next = next_tensor_segment(l, i);
	const ckpt_tensor_info *mine = next < l->nsegs ? l->segs[next].tensor : NULL, *u;
	if (mine && ckpt_checkpoint_find_tensor(&u, c, mine->group, mine->name) == 0 &&
	    memcmp(u->hash, mine->hash, sizeof(u->hash)) == 0)
		prefetch_chunk(snap, u, 0);
}

static void *verify_ahead_main(void *arg)
{
	ckpt_view_file *f = arg;
	view_layout *l = &f->layout;
	/* the file's own snapshot (snapshots may be used by several threads at once); the file
	 * joins this thread before it gives the snapshot back */
	ckpt_snapshot *snap = f->snap;
	const ckpt_checkpoint *c;
	if (ckpt_snapshot_checkpoint(&c, snap, f->epoch) != 0)
		return NULL;
	bool first = true;
	for (size_t i = f->ahead.first_seg; i < l->nsegs; i++) {
		const view_segment *seg = &l->segs[i];
		if (seg->bytes || seg->widen_bf16 || !f->ahead.checked[i])
			continue;
		const ckpt_tensor_info *mine = seg->tensor, *t;
		/* the same content in the helper's snapshot, or nothing to compare */
		if (ckpt_checkpoint_find_tensor(&t, c, mine->group, mine->name) != 0 ||
		    memcmp(t->hash, mine->hash, sizeof(t->hash)) != 0 ||
		    t->nchunks != mine->nchunks || t->chunk_size != mine->chunk_size)
			continue;
		uint64_t start = i == f->ahead.first_seg ? f->ahead.first_chunk : 0;
		for (uint64_t k = start; k < t->nchunks; k++) {
			if (__atomic_load_n(&f->ahead.stop, __ATOMIC_ACQUIRE))
				return NULL;
			if (__atomic_load_n(&l->verified[i][k], __ATOMIC_ACQUIRE))
				continue;
			if (first)
				prefetch_chunk(snap, t, k);
			first = false;
			prefetch_next(snap, c, l, i, t, k);
			pthread_mutex_lock(&f->ahead.lock);
			f->ahead.busy = true;
			f->ahead.busy_seg = i;
			f->ahead.busy_chunk = k;
			pthread_mutex_unlock(&f->ahead.lock);
			const void *data;
			size_t len;
			if (ckpt_tensor_chunk(&data, &len, snap, t, (uint32_t)k, true) == 0)
				__atomic_store_n(&f->ahead.checked[i][k], data, __ATOMIC_RELEASE);
			pthread_mutex_lock(&f->ahead.lock);
			f->ahead.busy = false;
			pthread_cond_broadcast(&f->ahead.checked_one);
			pthread_mutex_unlock(&f->ahead.lock);
		}
	}
	return NULL;
}

/* Start the helper once per file, from chunk @p chunk + 1 of segment @p seg_index on. */
static void start_verify_ahead(ckpt_view_file *f, size_t seg_index, uint64_t chunk)
{
	view_layout *l = &f->layout;
	f->ahead_tried = true;
	if (l->size < VERIFY_AHEAD_MIN_BYTES)
		return;
	f->ahead.checked = calloc(l->nsegs, sizeof(*f->ahead.checked));
	if (!f->ahead.checked)
		return;
	for (size_t i = seg_index; i < l->nsegs; i++) {
		const view_segment *seg = &l->segs[i];
		if (seg->bytes || seg->widen_bf16 || seg->tensor->nchunks == 0)
			continue;
		if (!l->verified[i])
			l->verified[i] = calloc(seg->tensor->nchunks, 1);
		f->ahead.checked[i] = calloc(seg->tensor->nchunks, sizeof(void *));
		if (!l->verified[i] || !f->ahead.checked[i])
			return; /* the helper skips what it has no arrays for */
	}
	/* the reader checks this chunk itself now: the disk reads all of it at once */
	prefetch_chunk(f->snap, l->segs[seg_index].tensor, chunk);
	f->ahead.first_seg = seg_index;
	f->ahead.first_chunk = chunk + 1;
	if (pthread_mutex_init(&f->ahead.lock, NULL) != 0)
		return;
	if (pthread_cond_init(&f->ahead.checked_one, NULL) != 0) {
		pthread_mutex_destroy(&f->ahead.lock);
		return;
	}
	f->ahead.started = pthread_create(&f->ahead.thread, NULL, verify_ahead_main, f) == 0;
	if (!f->ahead.started) {
		pthread_cond_destroy(&f->ahead.checked_one);
		pthread_mutex_destroy(&f->ahead.lock);
	}
}

static void stop_verify_ahead(ckpt_view_file *f)
{
	if (f->ahead.started) {
		__atomic_store_n(&f->ahead.stop, true, __ATOMIC_RELEASE);
		pthread_join(f->ahead.thread, NULL);
		pthread_cond_destroy(&f->ahead.checked_one);
		pthread_mutex_destroy(&f->ahead.lock);
	}
	if (f->ahead.checked) {
		for (size_t i = 0; i < f->layout.nsegs; i++)
			free(f->ahead.checked[i]);
		free(f->ahead.checked);
	}
}

/* True if the helper verified chunk @p chunk of segment @p seg at address @p data; if it is
 * checking that chunk now, wait for the outcome (its pass is as far as the reader's would be). */
static bool checked_by_helper(ckpt_view_file *f, size_t seg, uint64_t chunk, const void *data)
{
	if (!f->ahead.checked || !f->ahead.checked[seg])
		return false;
	if (f->ahead.started) {
		pthread_mutex_lock(&f->ahead.lock);
		while (f->ahead.busy && f->ahead.busy_seg == seg && f->ahead.busy_chunk == chunk)
			pthread_cond_wait(&f->ahead.checked_one, &f->ahead.lock);
		pthread_mutex_unlock(&f->ahead.lock);
	}
	return __atomic_load_n(&f->ahead.checked[seg][chunk], __ATOMIC_ACQUIRE) == data;
}

/* iovecs for a plain (not widened) tensor window; returns bytes covered (< n if out of cap) */
static int tensor_iov(ckpt_view_file *f, size_t seg_index, uint64_t src_off, size_t n,
                      struct iovec *iov, size_t cap, size_t *count, size_t *covered)
{
	view_layout *l = &f->layout;
	const ckpt_tensor_info *t = l->segs[seg_index].tensor;
	*covered = 0;
	if (!l->verified[seg_index]) {
		l->verified[seg_index] = calloc(t->nchunks ? t->nchunks : 1, 1);
		if (!l->verified[seg_index])
			return -ENOMEM;
	}
	while (*covered < n && *count < cap) {
		if (t->chunk_size == 0)
			return -EIO;
		uint64_t chunk = src_off / t->chunk_size;
		uint64_t in_chunk = src_off % t->chunk_size;
		if (chunk >= t->nchunks) {
			report_bad_tensor(f, t, CKPT_ECORRUPT);
			return -EIO;
		}
		bool verified = __atomic_load_n(&l->verified[seg_index][chunk], __ATOMIC_ACQUIRE);
		const void *data;
		size_t data_len;
		int rc = ckpt_tensor_chunk(&data, &data_len, f->snap, t, (uint32_t)chunk, false);
		if (!rc && !verified)
			verified = checked_by_helper(f, seg_index, chunk, data);
		if (!rc && !verified) {
			if (!f->ahead_tried)
				start_verify_ahead(f, seg_index, chunk);
			rc = ckpt_tensor_chunk(&data, &data_len, f->snap, t, (uint32_t)chunk, true);
		}
		if (!rc && in_chunk >= data_len)
			rc = CKPT_ECORRUPT;
		if (rc) {
			report_bad_tensor(f, t, rc);
			return -EIO;
		}
		__atomic_store_n(&l->verified[seg_index][chunk], 1, __ATOMIC_RELEASE);
		size_t take = data_len - in_chunk;
		if (take > n - *covered)
			take = n - *covered;
		iov[*count].iov_base = (uint8_t *)data + in_chunk;
		iov[*count].iov_len = take;
		(*count)++;
		*covered += take;
		src_off += take;
	}
	return 0;
}

int ckpt_view_file_iov(ckpt_view_file *f, uint64_t offset, size_t len, struct iovec *iov,
                       size_t cap, size_t *out_count, void *scratch, size_t *out_read)
{
	view_layout *l = &f->layout;
	*out_count = 0;
	*out_read = 0;
	if (offset >= f->size || len == 0 || cap == 0)
		return 0;
	f->end_seen = false;
	if (f->parked && !f->layout_kept) {
		int rc = unpark(f);
		if (rc)
			return rc;
	}
	if (len > l->size - offset)
		len = (size_t)(l->size - offset);
	size_t done = 0, count = 0;
	size_t first = view_layout_find_segment(l, offset);
	for (size_t i = first; i < l->nsegs && done < len && count < cap; i++) {
		const view_segment *seg = &l->segs[i];
		uint64_t seg_off = offset + done - seg->file_offset;
		size_t n = (size_t)(seg->length - seg_off);
		if (n > len - done)
			n = len - done;
		if (seg->bytes) {
			iov[count].iov_base = (void *)(seg->bytes + seg_off);
			iov[count].iov_len = n;
			count++;
			done += n;
		} else if (seg->widen_bf16) {
			if (!scratch)
				break; /* the caller copies this part */
			uint8_t *dst = (uint8_t *)scratch + done;
			size_t got;
			int rc = view_layout_read(l, f->snap, offset + done, dst, n, &got);
			if (!rc && got != n)
				rc = -EIO;
			if (rc) {
				report_bad_tensor(f, seg->tensor, rc);
				return -EIO;
			}
			iov[count].iov_base = dst;
			iov[count].iov_len = n;
			count++;
			done += n;
		} else {
			size_t covered;
			int rc = tensor_iov(f, i, seg->tensor_offset + seg_off, n, iov, cap, &count,
			                    &covered);
			if (rc)
				return rc;
			done += covered;
			if (covered < n)
				break;
		}
	}
	*out_count = count;
	*out_read = done;
	return 0;
}

int ckpt_view_file_read(ckpt_view_file *f, uint64_t offset, void *buf, size_t len, size_t *out_read)
{
	struct iovec iov[64];
	uint8_t *dst = buf;
	size_t done = 0;
	*out_read = 0;
	while (done < len) {
		size_t count, got;
		int rc = ckpt_view_file_iov(f, offset + done, len - done, iov, 64, &count,
		                            dst + done, &got);
		if (rc)
			return rc;
		if (got == 0)
			break;
		size_t pos = done;
		for (size_t k = 0; k < count; k++) {
			if (iov[k].iov_base != dst + pos)
				memcpy(dst + pos, iov[k].iov_base, iov[k].iov_len);
			pos += iov[k].iov_len;
		}
		done += got;
	}
	*out_read = done;
	return 0;
}

void ckpt_view_file_close(ckpt_view_file *f)
{
	if (!f)
		return;
	release(f);
	free(f);
}
