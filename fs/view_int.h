/* fs/view_int.h - internals shared by the view's source files (fs/view*.c)
 *
 * Node numbering (see include/ckpt/view.h): fixed root-level inodes below 2^24, epoch nodes
 * ((epoch + 1) << 24) | entry. A node is decoded from its inode alone, so nothing is kept per
 * inode and FUSE's forget is a no-op.
 */
#ifndef FS_VIEW_INT_H
#define FS_VIEW_INT_H

#include <pthread.h>
#include <sys/types.h>
#include <stdarg.h>

#include "ckpt/view.h"
#include "fs/layout.h"
#include "fs/render.h"

enum {
	VIEW_INO_ROOT = 1,
	VIEW_INO_RUN_JSON = 2,
	VIEW_INO_HISTORY = 3,
	VIEW_INO_BEST = 4,
	VIEW_INO_LATEST = 5,
};

/* entries inside an epoch */
enum {
	VIEW_ENT_DIR = 0,
	VIEW_ENT_METRICS = 1,
	VIEW_ENT_MODEL_DIR = 2,
	VIEW_ENT_OPTIMIZER_DIR = 3,
	VIEW_ENT_SAFETENSORS = 4,
	VIEW_ENT_MODEL_PT = 5,
	VIEW_ENT_CHECKPOINT_PT = 6,
	VIEW_ENT_PARAM_GROUPS = 7,
	VIEW_ENT_TENSOR0 = 16,
};

#define VIEW_ENTRY_BITS 24
#define VIEW_ENTRY_MASK ((UINT64_C(1) << VIEW_ENTRY_BITS) - 1)
#define VIEW_MAX_EPOCH CKPT_MAX_EPOCH /* what libckpt writes; 64 - VIEW_ENTRY_BITS - 1 bits */
#define VIEW_NAME_MAX CKPT_VIEW_NAME_MAX
/* Tensor files are entries VIEW_ENT_TENSOR0 + index in their epoch's entry space. */
#define VIEW_MAX_TENSOR_FILES ((size_t)(VIEW_ENTRY_MASK + 1 - VIEW_ENT_TENSOR0))

/* Extra key holding torch's param_groups JSON text. */
#define VIEW_PARAM_GROUPS_KEY "optimizer.param_groups"

struct ckpt_view {
	ckpt_store *store;
	view_render_options render;
	void (*log)(void *log_ctx, const char *line);
	void *log_ctx;
	/* epochs whose unreadable checkpoint record was logged: one line per epoch, however
	 * often the kernel or a client asks again */
	pthread_mutex_t damaged_lock;
	uint64_t *damaged;
	size_t ndamaged, damaged_cap;
	/* read snapshots in use, one per store generation (see view_snap_get in view.c) */
	pthread_mutex_t snaps_lock;
	struct view_snap *snaps;
	/* the newest commit time (the root's, history.csv's, best's and latest's mtime) of store
	 * generation newest_gen, under snaps_lock: one index scan per commit */
	bool newest_known;
	uint64_t newest_gen;
	int64_t newest_ns;
	/* history.csv as rendered for store generation history_gen (NULL: none yet), under
	 * history_lock: a stat or open of it does not decode every checkpoint record again until
	 * the next commit */
	pthread_mutex_t history_lock;
	char *history_text;
	size_t history_len;
	uint64_t history_gen;
	/* data.mdb as it was when the view was made: a file put in its place later (a restore
	 * from a backup) is not what this view reads (ckpt_view_check_store_file) */
	bool data_known, data_replaced_said;
	bool readers_full_said; /* under snaps_lock: the mount shows an older snapshot, logged */
	dev_t data_dev;
	ino_t data_ino;
};

/* A decoded node: what an inode designates within one snapshot. */
typedef struct view_node {
	uint64_t ino;
	ckpt_view_kind kind;
	uint64_t epoch;                 /* for epoch nodes */
	uint32_t entry;                 /* VIEW_ENT_* or VIEW_ENT_TENSOR0 + index */
	const ckpt_checkpoint *ckpt;    /* for epoch nodes; owned by the snapshot */
	const ckpt_tensor_info *tensor; /* for .npy files */
} view_node;

static inline uint64_t view_epoch_ino(uint64_t epoch, uint32_t entry)
{
	return ((epoch + 1) << VIEW_ENTRY_BITS) | entry;
}

/* fs/view_name.c */
/** "epoch-%04llu" into buf (>= 32 bytes). */
void view_epoch_name(char *buf, size_t cap, uint64_t epoch);
/** Parse a canonical epoch directory name. @return 0 or -ENOENT. */
int view_parse_epoch_name(uint64_t *out, const char *name);

/* fs/view_text.c: text files rendered into a layout */
int view_render_run_json(view_layout *out, ckpt_store *store);
/**
 * Every checkpoint of @p snap, ascending: *out_epochs and *out_ckpts (both to free(); the
 * checkpoints are owned by the snapshot), *out_count of each. An epoch whose checkpoint record
 * cannot be read (damaged) gets a NULL in *out_ckpts and is reported once through
 * view_report_damaged(); only running out of memory or failing to list the epochs fails the
 * call. @return 0 or a negative error code (outputs NULL/0).
 */
int view_load_readable_checkpoints(uint64_t **out_epochs, const ckpt_checkpoint ***out_ckpts,
                                   size_t *out_count, ckpt_view *view, ckpt_snapshot *snap);
/** Called once per damaged checkpoint record with the store's error and message. */
typedef void (*view_damage_report)(void *arg, uint64_t epoch, int rc, const char *why);
/** As view_load_readable_checkpoints(), reporting damaged records to @p report (ckpt log). */
int view_load_checkpoints_reporting(uint64_t **out_epochs, const ckpt_checkpoint ***out_ckpts,
                                    size_t *out_count, ckpt_snapshot *snap,
                                    view_damage_report report, void *arg);
/**
 * Log (once per epoch for the life of @p view) that epoch @p epoch cannot be shown: @p rc and
 * @p why (the store's message) say why. Its directory and files fail with EIO.
 */
void view_report_damaged(ckpt_view *view, uint64_t epoch, int rc, const char *why);
/** history.csv of @p snap; a damaged epoch keeps its row with every field but the epoch empty. */
int view_render_history(view_layout *out, ckpt_view *view, ckpt_snapshot *snap);
/**
 * The union of the metric names of @p ckpts (NULL entries skipped), sorted bytewise: *out is a
 * malloc'd array (free() it) of names borrowed from the checkpoints. @return 0 or -ENOMEM.
 */
int view_metric_names(const char ***out, size_t *out_count, const ckpt_checkpoint *const *ckpts,
                      size_t count);
/**
 * The header of metric @p name's column in a table whose other columns are @p fixed (malloc'd,
 * NULL without memory): the name itself, or, for a metric named like a fixed column,
 * "metric:" before it, as often as it takes to be unlike every other column (@p names: all
 * the metrics), so that readers keyed by header (pandas, csv.DictReader) keep every column.
 */
char *view_metric_column(const char *name, const char *const *fixed, size_t nfixed,
                         const char *const *names, size_t nnames);
/**
 * history.csv of checkpoints already loaded (ascending @p epochs); a NULL checkpoint (a damaged
 * record) gives the row "EPOCH,,,...," (every field but the epoch empty).
 */
int view_render_history_of(view_layout *out, const uint64_t *epochs,
                           const ckpt_checkpoint *const *ckpts, size_t count);
int view_render_metrics(view_layout *out, ckpt_snapshot *snap, const ckpt_checkpoint *c);
int view_render_param_groups(view_layout *out, const ckpt_checkpoint *c);
/** ISO-8601 UTC with milliseconds ("2026-11-22T12:43:33.123Z") into buf (>= 32 bytes). */
void view_format_time(char *buf, size_t cap, int64_t ns);

/** Set the message ckpt_view_last_error() returns on this thread. */
void view_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
